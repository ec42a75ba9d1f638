from django.urls import path

from . import views

app_name = "records"
urlpatterns = [
    path("<str:adapter>/", views.record_webhook, name="webhook"),
    path("<str:adapter>/<slug:practice>/", views.record_webhook, name="webhook-practice"),
    path("<str:adapter>/<slug:practice>", views.record_webhook, name="webhook-practice-bare"),
    # a location that runs its own record (Location.record_adapter): its webhooks name it
    path("<str:adapter>/<slug:practice>/locations/<int:location>/", views.record_webhook, name="webhook-location"),
    # …and without the last slash: still the location's (the practice's catch-all below would take it)
    path("<str:adapter>/<slug:practice>/locations/<int:location>", views.record_webhook,
         name="webhook-location-bare"),
    path("<str:adapter>/<slug:practice>/locations/<int:location>/<path:rest>", views.record_webhook,
         name="webhook-location-resource"),
    # FHIR rest-hook with notify_method put-resource: PUT {endpoint}/{type}/{id}
    path("<str:adapter>/<slug:practice>/<path:rest>", views.record_webhook, name="webhook-resource"),
]
