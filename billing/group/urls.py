from django.urls import path

from . import views

app_name = "group"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("export.csv", views.export, name="export"),
    path("refresh/", views.refresh, name="refresh"),
]
