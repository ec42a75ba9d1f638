from django.urls import path

from . import staff_views

app_name = "sms_replies"
urlpatterns = [
    path("", staff_views.sms_replies, name="list"),
    path("<int:hold_id>/clear/", staff_views.clear, name="clear"),
]
