from django.urls import path

from . import views

app_name = "integrations"

urlpatterns = [
    path("stripe/", views.stripe_webhook, name="stripe-webhook"),
    path("square/", views.square_webhook, name="square-webhook"),
]
