from django.urls import path

from . import views

urlpatterns = [
    path("inbound/", views.inbound, name="twilio_inbound"),
    path("status/", views.status, name="twilio_status"),
]
