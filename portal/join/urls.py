"""Joining online: the practice's public join page and the pages the processor's hosted page sends
the member back to."""

from django.urls import path

from . import views

app_name = "join"

urlpatterns = [
    path("<slug:practice_slug>/", views.join, name="page"),
    path("<slug:practice_slug>/done/<str:join_ref>/", views.done, name="done"),
    path("<slug:practice_slug>/cancelled/<str:join_ref>/", views.cancelled, name="cancelled"),
]
