from django.urls import path

from . import api

app_name = "api"
urlpatterns = [
    path("members/", api.MemberSearchApi.as_view(), name="member-search"),
    path("memberships/<int:pk>/", api.MembershipDetailApi.as_view(), name="membership-detail"),
    path("memberships/<int:pk>/redemptions/", api.RedemptionCreateApi.as_view(), name="redemption-create"),
]
