"""Log-in throttling, session expiry, security headers, CSRF, friendly error pages."""

import datetime

import pytest
from django.contrib.sessions.models import Session
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from memberships.roles import FRONT_DESK
from tests.factories import staff_user

PASSWORD = "pw-Staff-2026!"


def login(client, username, password):
    return client.post(reverse("memberships:login"), {"username": username, "password": password})


def test_login_lands_on_member_search(client, front_desk):
    response = login(client, front_desk.username, PASSWORD)
    assert response.status_code == 302
    assert b"Find a member" in client.get(response["Location"]).content


def test_wrong_password_shows_a_form_error(client, front_desk):
    response = login(client, front_desk.username, "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_repeated_failed_logins_lock_the_account(client, practice, settings):
    user = staff_user(FRONT_DESK, practice, username="target")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "target", "wrong")
    locked = login(client, "target", PASSWORD)  # even the right password is refused now
    assert locked.status_code in (403, 429)
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out (the address has a higher limit of its own).
    other = staff_user(FRONT_DESK, practice, username="colleague")
    assert login(Client(), other.username, PASSWORD).status_code == 302
    assert user.pk


def test_session_expires(client, front_desk):
    login(client, front_desk.username, PASSWORD)
    url = reverse("memberships:home")
    assert client.get(url).status_code == 200
    assert 0 < client.session.get_expiry_age() <= 8 * 3600
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_security_headers(client, front_desk):
    client.force_login(front_desk)
    response = client.get(reverse("memberships:home"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_forms_without_csrf_token_are_refused(front_desk, member_with_glow):
    member, membership, facial, _ = member_with_glow
    client = Client(enforce_csrf_checks=True)
    client.force_login(front_desk)
    page = client.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    response = client.post(reverse("memberships:redeem", args=[member.pk]), {"service": facial.pk, "quantity": "1"})
    assert response.status_code == 403


def test_friendly_error_pages(client, front_desk):
    client.force_login(front_desk)
    response = client.get("/members/999999/")
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"Traceback" not in response.content
    assert "Something went wrong" in render_to_string("500.html")


@pytest.mark.parametrize("path", ["/", "/members/new/", "/manage/"])
def test_pages_label_every_input(client, manager, glow, path):
    client.force_login(manager)
    html = client.get(path).content.decode()
    import re

    for input_id in re.findall(r'<(?:input(?![^>]*type="hidden")|select|textarea)[^>]*\bid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, f"input {input_id} has no label"
