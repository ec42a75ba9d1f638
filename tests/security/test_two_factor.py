"""Managers and the admin sign in with a second factor (TOTP, django-otp); front desk and clinicians
do not. These tests sign in through the real pages with a plain Django client (no shortcut)."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from memberships.models import AuditLog
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import staff_user
from tests.support.two_factor import code_for

PASSWORD = "pw-Staff-2026!"
MANAGER_PAGES = ["/manage/", "/manage/dunning/", "/admin/", "/admin/memberships/member/"]


def password_login(username, *, next_url="/"):
    client = Client()
    response = client.post(reverse("memberships:login") + f"?next={next_url}",
                           {"username": username, "password": PASSWORD, "next": next_url})
    assert response.status_code == 302, response.content
    return client, response


def reaches(client, path) -> bool:
    return client.get(path).status_code == 200


@pytest.fixture
def new_manager(practice):
    """A manager who has not set up an authenticator yet."""
    user = staff_user(MANAGER, practice, username="newmanager")
    TOTPDevice.objects.filter(user=user).delete()
    return user


def test_a_manager_without_an_authenticator_is_sent_to_set_one_up_before_any_manager_page(new_manager):
    client, response = password_login("newmanager", next_url="/manage/")
    assert response["Location"].startswith(reverse("memberships:two_factor_setup"))
    for path in MANAGER_PAGES + ["/"]:
        page = client.get(path)
        assert page.status_code == 302 and page["Location"].startswith(reverse("memberships:two_factor_setup")), path
    assert client.get("/api/v1/members/").status_code == 403


def test_setting_up_shows_a_qr_code_and_the_secret_then_ten_recovery_codes_once(new_manager, time_machine):
    client, _ = password_login("newmanager", next_url="/manage/")
    page = client.get(reverse("memberships:two_factor_setup") + "?next=/manage/")
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html and "<script" not in html.split("</head>")[1]
    device = TOTPDevice.objects.get(user=new_manager, confirmed=False)
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    import base64

    assert base64.b32decode(secret) == device.bin_key
    assert client.get(reverse("memberships:two_factor_setup")).content.decode().count(secret[:4]) >= 1  # same key

    wrong = client.post(reverse("memberships:two_factor_setup"), {"code": "000000", "next": "/manage/"})
    assert wrong.status_code == 400 and not reaches(client, "/manage/")
    time_machine.move_to(timezone.now() + timedelta(seconds=5))  # after a wrong code the device waits a moment
    done = client.post(reverse("memberships:two_factor_setup"), {"code": code_for(device), "next": "/manage/"})
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert done.status_code == 200 and len(set(codes)) == 10
    assert set(StaticToken.objects.filter(device__user=new_manager).values_list("token", flat=True)) == set(codes)
    assert reaches(client, "/manage/") and reaches(client, "/admin/")
    assert AuditLog.objects.filter(user=new_manager, action="two_factor_set_up").count() == 1
    # Shown once: the setup page now sends them on, and never lists the codes again.
    again = client.get(reverse("memberships:two_factor_setup"))
    assert again.status_code == 302 and codes[0] not in again.content.decode()


def test_a_manager_with_an_authenticator_enters_the_code_after_the_password(manager, time_machine):
    client, response = password_login(manager.username, next_url="/manage/")
    assert response["Location"].startswith(reverse("memberships:two_factor_verify"))
    for path in MANAGER_PAGES:
        assert not reaches(client, path), path
    device = TOTPDevice.objects.get(user=manager)
    wrong = client.post(reverse("memberships:two_factor_verify"), {"code": "123456", "next": "/manage/"})
    assert wrong.status_code == 400 and "not right" in wrong.content.decode()
    assert not reaches(client, "/manage/") and not reaches(client, "/admin/")
    too_soon = client.post(reverse("memberships:two_factor_verify"), {"code": code_for(device), "next": "/manage/"})
    assert too_soon.status_code == 400 and "Too many wrong codes" in too_soon.content.decode()
    time_machine.move_to(timezone.now() + timedelta(seconds=5))
    right = client.post(reverse("memberships:two_factor_verify"), {"code": code_for(device), "next": "/manage/"})
    assert right.status_code == 302 and right["Location"] == "/manage/"
    for path in MANAGER_PAGES:
        assert reaches(client, path), path


def test_a_code_already_used_does_not_sign_in_a_second_session(manager):
    device = TOTPDevice.objects.get(user=manager)
    code = code_for(device)
    first, _ = password_login(manager.username)
    assert first.post(reverse("memberships:two_factor_verify"), {"code": code}).status_code == 302
    second, _ = password_login(manager.username)
    assert second.post(reverse("memberships:two_factor_verify"), {"code": code}).status_code == 400
    assert not reaches(second, "/manage/")


def test_a_recovery_code_signs_in_once(manager, time_machine):
    from memberships.two_factor import issue_recovery_codes

    codes = issue_recovery_codes(user=manager)
    first, _ = password_login(manager.username)
    response = first.post(reverse("memberships:two_factor_verify"), {"code": codes[0].upper(), "next": "/manage/"})
    assert response.status_code == 302 and reaches(first, "/manage/")
    assert AuditLog.objects.get(user=manager, action="two_factor_recovery_code_used").detail == {"codes_left": 9}
    second, _ = password_login(manager.username)
    reused = second.post(reverse("memberships:two_factor_verify"), {"code": codes[0], "next": "/manage/"})
    assert reused.status_code == 400 and not reaches(second, "/manage/")
    time_machine.move_to(timezone.now() + timedelta(seconds=5))  # after a wrong code the device waits a moment
    assert second.post(reverse("memberships:two_factor_verify"), {"code": codes[1]}).status_code == 302


@pytest.mark.parametrize("role", [FRONT_DESK, CLINICIAN])
def test_front_desk_and_clinicians_are_not_asked_for_a_code(practice, role):
    staff_user(role, practice, username="staff")
    client, response = password_login("staff")
    assert response["Location"] == "/"
    assert reaches(client, "/")
    assert client.get("/admin/").status_code in (302, 403)  # not admin staff either way


def test_the_admin_requires_a_verified_session_even_for_a_superuser(django_user_model):
    django_user_model.objects.create_superuser("root", "root@glow.example", PASSWORD)
    client, response = password_login("root", next_url="/admin/")
    assert response["Location"].startswith(reverse("memberships:two_factor_setup"))
    assert not reaches(client, "/admin/")
    # The admin's own login page sends them to the staff login's second step, not a form of its own.
    admin_login = client.get("/admin/login/?next=/admin/")
    assert admin_login.status_code == 302 and "/login/" in admin_login["Location"]


def test_an_anonymous_visit_to_the_admin_goes_to_the_staff_login():
    response = Client().get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("memberships:login"))
    assert b"Staff log in" in response.content


def test_the_next_address_cannot_leave_the_site(manager):
    client, _ = password_login(manager.username)
    device = TOTPDevice.objects.get(user=manager)
    response = client.post(reverse("memberships:two_factor_verify"),
                           {"code": code_for(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_admin_never_shows_an_authenticators_key(admin_client, manager):
    device = TOTPDevice.objects.get(user=manager)
    page = admin_client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk])).content.decode()
    assert device.key not in page
    assert admin_client.get(reverse("admin:otp_totp_totpdevice_config", args=[device.pk])).status_code in (403, 404)
