from django.urls import path

from . import staff_views

app_name = "records_staff"
urlpatterns = [
    path("", staff_views.record_exceptions, name="list"),
    path("<int:exception_id>/resolve/", staff_views.resolve, name="resolve"),
    path("<int:exception_id>/apply/", staff_views.apply, name="apply"),
    path("<int:exception_id>/dismiss/", staff_views.dismiss, name="dismiss"),
]
