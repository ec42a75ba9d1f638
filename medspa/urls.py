from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from integrations.staff_views import card_link
from medspa.health.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("webhooks/records/", include("integrations.records.urls")),
    path("api/v1/", include("memberships.api_urls")),
    path("webhooks/twilio/", include("integrations.messaging.urls")),
    path("webhooks/", include("integrations.urls")),
    path("billing/card/square/", include("integrations.processors.square_card_urls")),
    path("billing/card/", include("integrations.processors.card_link_urls")),
    path("manage/dunning/policy/", include("billing.dunning.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("manage/", include("billing.urls")),
    path("manage/", include("billing.staff.urls")),
    path("group/", include("billing.group.urls")),
    path("members/<int:member_id>/card-link/", card_link, name="card_link"),
    path("records/exceptions/", include("integrations.records.staff_urls")),
    path("messages/replies/", include("integrations.messaging.staff_urls")),
    path("", include("portal.urls")),
    path("", include("memberships.urls")),
]
