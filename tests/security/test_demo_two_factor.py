"""The demo's manager still logs in: seed_demo gives them an authenticator and prints its key with
the logins, and the code it yields passes the second step."""

import base64
import re

from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from memberships.roles import MANAGER
from tests.factories import PracticeFactory, staff_user


def test_the_demo_manager_logs_in_with_the_printed_key(db, capsys):
    practice = PracticeFactory(slug="glow-aesthetics", name="Glow Aesthetics")  # the demo exists: logins only
    manager = staff_user(MANAGER, practice, username="manager", password="demo-manager-2026")
    TOTPDevice.objects.filter(user=manager).delete()
    call_command("seed_demo")
    out = capsys.readouterr().out
    secret = re.search(r"two-factor key .*: ([A-Z2-7]+)", out).group(1)
    call_command("seed_demo")  # again: the same key, no second authenticator
    assert secret in capsys.readouterr().out and TOTPDevice.objects.filter(user=manager).count() == 1

    client = Client()
    response = client.post(reverse("memberships:login"), {"username": "manager", "password": "demo-manager-2026"})
    assert response["Location"].startswith(reverse("memberships:two_factor_verify"))
    code = f"{totp(base64.b32decode(secret)):06d}"
    assert client.post(reverse("memberships:two_factor_verify"), {"code": code}).status_code == 302
    assert client.get("/manage/").status_code == 200
