"""The staff login: the password form, the warning of how many attempts are left before the lock,
and the page a locked-out client gets (django-axes' AXES_LOCKOUT_CALLABLE). Managers go on to the
second factor (`memberships.views.two_factor`)."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.shortcuts import render
from django.utils import timezone

from memberships.login_throttle import attempts_left, lock_lifts_in
from memberships.two_factor import requires_two_factor, second_factor_url

from .location import after_sign_in


def _minutes(delta) -> int:
    return max(1, math.ceil(delta.total_seconds() / 60))


class StaffLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def get_success_url(self):
        """A manager goes on to the second factor (the code, or setting up an authenticator); then,
        on signing in, anyone whose practice has locations to where they work today."""
        url = super().get_success_url()
        user = self.request.user
        if self.request.method == "POST":
            url = after_sign_in(user, url)
        return second_factor_url(user, url) if requires_two_factor(user) else url

    def form_invalid(self, form):
        context = self.get_context_data(form=form)
        if hasattr(self.request, "axes_ip_address") and form.data.get("username"):
            context["attempts_left"] = attempts_left(self.request, {"username": form.data.get("username")})
            context["cool_off_minutes"] = _minutes(timezone.timedelta(hours=settings.AXES_COOLOFF_TIME))
        return self.render_to_response(context)


def locked_out(request, original_response=None, credentials=None):
    """The styled lockout page: why, and how long to wait. 429, as axes answers by default."""
    wait = lock_lifts_in(request, credentials)
    return render(request, "registration/locked_out.html", {
        "wait_minutes": _minutes(wait),
        "until": timezone.localtime() + wait,
    }, status=429)
