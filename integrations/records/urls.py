from django.urls import path

from . import views

app_name = "records"
urlpatterns = [
    path("<str:adapter>/", views.record_webhook, name="webhook"),
    path("<str:adapter>/<slug:practice>/", views.record_webhook, name="webhook-practice"),
    path("<str:adapter>/<slug:practice>", views.record_webhook, name="webhook-practice-bare"),
    # FHIR rest-hook with notify_method put-resource: PUT {endpoint}/{type}/{id}
    path("<str:adapter>/<slug:practice>/<path:rest>", views.record_webhook, name="webhook-resource"),
]
