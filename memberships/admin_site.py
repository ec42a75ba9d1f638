"""The admin site: django-otp's OTPAdminSite (only a session verified with the second factor is let in),
signing in through the staff login — one login page, with its throttle and its two-factor step —
rather than the admin's own form."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django_otp.admin import OTPAdminSite

from memberships.two_factor import is_verified, requires_two_factor, second_factor_url


class StaffAdminSite(OTPAdminSite):
    site_header = "Membership ledger admin"
    site_title = "Membership ledger admin"

    def __init__(self, name: str = "admin"):
        super().__init__(name)

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        if not request.user.is_authenticated:
            return redirect_to_login(next_url, login_url=reverse("memberships:login"))
        if requires_two_factor(request.user) and not is_verified(request.user):
            return redirect(second_factor_url(request.user, next_url))
        raise PermissionDenied  # signed in, second factor done, and still not admin staff
