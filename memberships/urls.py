from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .views import home_location, visit
from .views import location, login, member_requests, two_factor

app_name = "memberships"
urlpatterns = [
    path("login/", login.StaffLoginView.as_view(), name="login"),
    path("login/code/", two_factor.verify, name="two_factor_verify"),
    path("login/two-factor-setup/", two_factor.setup, name="two_factor_setup"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("location/", location.choose, name="choose_location"),
    path("", views.home, name="home"),
    path("members/new/", views.enroll_new, name="enroll_new"),
    path("members/<int:member_id>/", views.chart, name="chart"),
    path("members/<int:member_id>/redeem/", views.redeem, name="redeem"),
    path("members/<int:member_id>/entries/<int:entry_id>/reverse/", views.reverse, name="reverse"),
    path("members/<int:member_id>/enroll/", views.enroll, name="enroll"),
    path("members/<int:member_id>/tier/", views.change_tier, name="change_tier"),
    path("members/<int:member_id>/pause/", views.pause, name="pause"),
    path("members/<int:member_id>/resume/", views.resume, name="resume"),
    path("members/<int:member_id>/cancel/", views.cancel, name="cancel"),
    path("members/<int:member_id>/who-looked/", views.who_looked, name="who_looked"),
    path("members/<int:member_id>/home-location/", home_location.home_location, name="home_location"),
    # a member of the group at another practice's desk: the chart panel and redeeming, nothing else
    path("visit/<int:member_id>/", visit.visit, name="visit"),
    path("visit/<int:member_id>/redeem/", visit.visit_redeem, name="visit_redeem"),
    path("member-requests/", member_requests.member_requests, name="member_requests"),
    path("member-requests/<int:request_id>/", member_requests.decide_member_request, name="member_request_decide"),
]
