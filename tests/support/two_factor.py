"""Managers' second factor in tests: every manager test user has an authenticator (a TOTP device
with a known key), and the test clients' `force_login` leaves a session verified with it — as a
manager who typed their code — so the suite's manager pages and admin tests sign in as in real life.
The two-factor tests themselves take a user without a device, or a plain client, and go through
the steps."""

from __future__ import annotations

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

# The authenticator's secret of every manager test user (hex, 20 bytes): tests compute its codes.
TEST_TOTP_KEY = "3132333435363738393031323334353637383930"


def give_authenticator(user, *, key: str = TEST_TOTP_KEY) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", key=key, confirmed=True)


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The 6-digit code the device's app shows now (django_otp.oath.totp on the device's key), or
    `steps_ahead` 30-second steps later."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=steps_ahead):06d}"


def verify_session(client, user) -> None:
    """Mark the client's session as verified with the user's authenticator, when they have one."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        return
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


class VerifyingClientMixin:
    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        verify_session(self, user)


class VerifyingClient(VerifyingClientMixin, Client):
    """django.test.Client whose force_login also passes the second factor (see the module)."""
