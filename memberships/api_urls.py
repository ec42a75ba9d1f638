from django.urls import path, re_path

from .api import catalogue, members, spending
from .api.errors import not_found

app_name = "api"
urlpatterns = [
    path("members/", members.MemberListApi.as_view(), name="member-list"),
    path("members/<int:pk>/", members.MemberDetailApi.as_view(), name="member-detail"),
    path("memberships/<int:pk>/", members.MembershipDetailApi.as_view(), name="membership-detail"),
    path("memberships/<int:pk>/timeline/", members.TimelineApi.as_view(), name="membership-timeline"),
    path("memberships/<int:pk>/redemptions/", spending.RedemptionCreateApi.as_view(), name="redemption-create"),
    path("memberships/<int:pk>/holds/", spending.HoldsApi.as_view(), name="membership-holds"),
    path("redemptions/<int:pk>/reverse/", spending.RedemptionReverseApi.as_view(), name="redemption-reverse"),
    path("holds/<int:pk>/", spending.HoldDetailApi.as_view(), name="hold-detail"),
    path("holds/<int:pk>/commit/", spending.HoldCommitApi.as_view(), name="hold-commit"),
    path("holds/<int:pk>/release/", spending.HoldReleaseApi.as_view(), name="hold-release"),
    path("tiers/", catalogue.TierListApi.as_view(), name="tier-list"),
    path("tiers/<int:pk>/", catalogue.TierDetailApi.as_view(), name="tier-detail"),
    path("services/", catalogue.ServiceListApi.as_view(), name="service-list"),
    path("services/<int:pk>/", catalogue.ServiceDetailApi.as_view(), name="service-detail"),
    re_path(r"", not_found, name="not-found"),
]
