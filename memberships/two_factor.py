"""Two-factor sign-in (TOTP, django-otp) for managers and the admin.

Who: anyone who reaches the manager pages (`view_dashboard`) or the admin (`is_staff`,
`is_superuser`). Front desk and clinicians sign in with their password alone. Such a user's session
is *verified* once they entered a code from their authenticator app, or one of their ten single-use
recovery codes (django-otp's static device); until then every page but the sign-in steps sends them
to enter the code — or, without an authenticator yet, to set one up. An unverified session calling
the API with its cookie gets 403 `two_factor_required`; API tokens are their own credential
(`memberships.auth`). The admin also checks it itself (`memberships.admin_site`)."""

from __future__ import annotations

from base64 import b32encode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODE_COUNT = 10
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
# The sign-in steps themselves, reachable before the second factor.
OPEN_URL_NAMES = {"memberships:login", "memberships:logout", "memberships:two_factor_verify",
                  "memberships:two_factor_setup"}


def requires_two_factor(user) -> bool:
    return bool(user.is_authenticated and (
        user.is_staff or user.is_superuser or user.has_perm("memberships.view_dashboard")))


def is_verified(user) -> bool:
    return bool(getattr(user, "otp_device", None))


def authenticator_for(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def pending_authenticator(user) -> TOTPDevice:
    """The authenticator being set up: the same secret on every visit until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


@transaction.atomic
def issue_recovery_codes(*, user) -> list[str]:
    """Ten new single-use codes; any earlier ones stop working. Shown once, stored as django-otp keeps them."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_NAME, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def second_factor_url(user, next_url: str) -> str:
    name = "memberships:two_factor_verify" if authenticator_for(user) else "memberships:two_factor_setup"
    return redirect_to_login(next_url, login_url=reverse(name))["Location"]


class TwoFactorRequiredMiddleware:
    """After django-otp's OTPMiddleware: a session that needs the second factor and lacks it reaches
    only the sign-in steps and static files."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not is_verified(user) and not self._open(request) and requires_two_factor(user):
            if request.path.startswith("/api/"):
                return JsonResponse({"code": "two_factor_required",
                                     "detail": "Enter the code from your authenticator app first."}, status=403)
            return redirect(second_factor_url(user, request.get_full_path()))
        return self.get_response(request)

    @staticmethod
    def _open(request) -> bool:
        if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        return match.view_name in OPEN_URL_NAMES


def ensure_authenticator(*, user, key_hex: str) -> TOTPDevice:
    """The user's authenticator, made with this key when they have none (the demo's manager, whose
    key is printed with the demo logins; never for a real account)."""
    return authenticator_for(user) or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, key=key_hex,
                                                                  confirmed=True)


def authenticator_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it typed in: base32."""
    return b32encode(device.bin_key).decode()
