"""The member's side: joining online and the member's own page. Public: every page here is reached
without a staff login (the member page with its own, member-scoped session)."""

from django.urls import include, path

app_name = "portal"

urlpatterns = [
    path("join/", include("portal.join.urls")),
    path("me/", include("portal.me.urls")),
]
