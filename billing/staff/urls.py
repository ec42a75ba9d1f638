from django.urls import path

from . import views

app_name = "manager"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dunning/", views.dunning, name="dunning"),
    path("dunning/<int:case_id>/contacted/", views.mark_contacted, name="mark_contacted"),
    path("dunning/<int:case_id>/card-link/", views.resend_card_link, name="resend_card_link"),
]
