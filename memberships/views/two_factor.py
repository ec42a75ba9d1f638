"""The second sign-in step for managers (`memberships.two_factor`): set up an authenticator app (a QR
code and the secret as text, then ten recovery codes shown once), or enter its 6-digit code — or a
recovery code — after the password."""

from __future__ import annotations

from base64 import b32encode

import django_otp
import segno
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp.plugins.otp_static.models import StaticDevice

from memberships.two_factor import (
    authenticator_for, is_verified, issue_recovery_codes, pending_authenticator, requires_two_factor,
)

from .common import audit


class CodeForm(forms.Form):
    code = forms.CharField(label="Code", max_length=20, widget=forms.TextInput(attrs={
        "autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True, "size": 10}))

    def clean_code(self):
        return "".join(self.cleaned_data["code"].split()).replace("-", "").lower()


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def _grouped(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


WRONG_CODE = "That code is not right, or was used already. Wait for the next code and try again."
WAIT = "Too many wrong codes: wait a few seconds, then enter the code shown at that moment."


def _verify(user, code: str):
    """(the device that accepts the code — the authenticator for six digits, else a recovery code —
    or None, the error to show). django-otp refuses a TOTP code already used, deletes a recovery code
    once used, and after a wrong code makes the device wait (1 s, then doubling) before it checks
    another."""
    devices = [authenticator_for(user)] if code.isdigit() and len(code) == 6 else \
        list(StaticDevice.objects.filter(user=user, confirmed=True))
    devices = [device for device in devices if device is not None]
    if devices and not any(device.verify_is_allowed()[0] for device in devices):
        return None, WAIT
    for device in devices:
        accepted = django_otp.verify_token(user, device.persistent_id, code)
        if accepted is not None:
            return accepted, None
    return None, WRONG_CODE


def _signed_in(request, device) -> None:
    django_otp.login(request, device)
    request.session.cycle_key()


@never_cache
@login_required
def verify(request):
    if is_verified(request.user) or not requires_two_factor(request.user):
        return redirect(_next_url(request))
    if authenticator_for(request.user) is None:
        return redirect(f"{_setup_url()}?{request.GET.urlencode()}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device, error = _verify(request.user, form.cleaned_data["code"])
        if device is not None:
            _signed_in(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                audit(request, action="two_factor_recovery_code_used", detail={"codes_left": left})
            return redirect(_next_url(request))
        form.add_error("code", error)
    return render(request, "registration/two_factor_verify.html", {"form": form, "next": _next_url(request)},
                  status=200 if not form.errors else 400)


def _setup_url() -> str:
    return reverse("memberships:two_factor_setup")


@never_cache
@login_required
def setup(request):
    if not requires_two_factor(request.user):
        return redirect(_next_url(request))
    if authenticator_for(request.user) is not None:
        if is_verified(request.user):
            return redirect(_next_url(request))
        return redirect(f"{reverse('memberships:two_factor_verify')}?{request.GET.urlencode()}")
    device = pending_authenticator(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed = device.verify_is_allowed()[0]
        if allowed and device.verify_token(form.cleaned_data["code"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = issue_recovery_codes(user=request.user)
            _signed_in(request, device)
            audit(request, action="two_factor_set_up")
            return render(request, "registration/two_factor_recovery_codes.html",
                          {"codes": codes, "next": _next_url(request)})
        form.add_error("code", "That code is not right. Check the clock of your phone, and enter the code shown now."
                       if allowed else WAIT)
    secret = b32encode(device.bin_key).decode()
    return render(request, "registration/two_factor_setup.html", {
        "form": form, "next": _next_url(request), "secret": _grouped(secret),
        "qr_svg": segno.make(device.config_url, error="m").svg_inline(scale=4, title="Authenticator QR code"),
    }, status=200 if not form.errors else 400)
