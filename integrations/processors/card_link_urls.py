from django.urls import path

from . import card_link_views

urlpatterns = [
    path("<str:token>/", card_link_views.card_update, name="card_update"),
    path("<str:token>/done/", card_link_views.card_update_done, name="card_update_done"),
]
