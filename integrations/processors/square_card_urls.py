"""The Square card page (`square_card_views`), under /billing/card/square/."""

from django.urls import path

from . import square_card_views

app_name = "square_card"

urlpatterns = [
    path("<str:token>/", square_card_views.card_page, name="page"),
]
