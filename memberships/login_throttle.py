"""Failed-login throttling on django-axes, by two counts at once:

- per username, across addresses: `AXES_FAILURE_LIMIT` failures (default 5) for one username from
  anywhere lock that username, so guessing one account's password from many addresses stops;
- per address, across usernames: `LOGIN_IP_FAILURE_LIMIT` failures (default 20) from one client
  address lock that address, so trying many usernames from one place stops. Higher than the
  username's: a practice's front desk computers usually share one public address.

Both within the cool-off (`AXES_COOLOFF_HOURS`): the lock lifts when the newest counted failure is
that old. The address is `memberships.client_ip.client_ip` (the trusted-proxy rule), so behind the
production proxy each client is counted, not the proxy.

axes compares one number with one limit; this handler gives it the username-scale count that
leaves as many attempts as the tighter of the two counts does. A successful login clears only that
username's failures from that address: not the address's failures on other usernames (someone
who knows one password cannot wipe the count of a spray from their address), nor the failures
from elsewhere on this username."""

from __future__ import annotations

from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone


def _failures_since(request, credentials, threshold) -> tuple[int, int]:
    """(failures of this username from anywhere, failures from this address on any username)."""
    username = get_client_username(request, credentials)
    recent = AccessAttempt.objects.filter(attempt_time__gte=threshold)
    by_username = recent.filter(username=username).aggregate(n=Sum("failures_since_start"))["n"] or 0
    by_address = recent.filter(ip_address=request.axes_ip_address).aggregate(n=Sum("failures_since_start"))["n"] or 0
    return by_username, by_address


def attempts_left(request, credentials=None) -> int:
    """How many more failures the tighter of the two counts allows (0: locked)."""
    threshold = (getattr(request, "axes_attempt_time", None) or timezone.now()) - get_cool_off(request)
    by_username, by_address = _failures_since(request, credentials, threshold)
    return max(0, min(settings.AXES_FAILURE_LIMIT - by_username, settings.LOGIN_IP_FAILURE_LIMIT - by_address))


def lock_lifts_in(request, credentials=None, *, now=None) -> timedelta:
    """How long until the newest failure that counts towards the lock leaves the cool-off."""
    now = now or timezone.now()
    cool_off = get_cool_off(request)
    username = get_client_username(request, credentials)
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - cool_off)
    newest = max(filter(None, [
        recent.filter(username=username).aggregate(t=Max("attempt_time"))["t"],
        recent.filter(ip_address=request.axes_ip_address).aggregate(t=Max("attempt_time"))["t"],
    ]), default=None)
    return max(timedelta(0), newest + cool_off - now) if newest else timedelta(0)


class LoginThrottleHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        return settings.AXES_FAILURE_LIMIT - attempts_left(request, credentials)

    def reset_user_attempts(self, request, credentials=None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()
        return count
