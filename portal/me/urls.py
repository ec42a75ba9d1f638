"""The member's own page (`/me/`): the sign-in by a single-use link, the page, its requests."""

from django.urls import path

from . import views

app_name = "me"

urlpatterns = [
    path("", views.page, name="page"),
    path("link/", views.link, name="link"),
    path("link/expired/", views.link_expired, name="link_expired"),
    path("open/<int:link_id>/<str:token>/", views.open_link, name="open"),
    path("request/", views.request_change, name="request"),
    path("card/", views.update_card, name="card"),
    path("sign-out/", views.sign_out, name="sign_out"),
]
