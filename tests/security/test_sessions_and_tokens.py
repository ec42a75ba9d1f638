"""Idle staff sessions end after STAFF_SESSION_IDLE_MINUTES; API tokens expire and can be revoked
in the admin, and an expired or revoked token answers 401."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from memberships.auth import issue_api_token, revoke_api_tokens
from memberships.models import ApiToken, AuditLog
from memberships.roles import FRONT_DESK, MANAGER
from memberships.services import Actor
from tests.factories import PracticeFactory, staff_user

PASSWORD = "pw-Staff-2026!"


def test_an_idle_staff_session_ends_after_the_idle_minutes(front_desk, time_machine, settings):
    assert settings.STAFF_SESSION_IDLE_MINUTES == 30
    client = Client()
    client.post(reverse("memberships:login"), {"username": front_desk.username, "password": PASSWORD})
    for _ in range(3):  # activity keeps it alive, well past 30 minutes in all
        time_machine.move_to(timezone.now() + timedelta(minutes=25))
        assert client.get("/").status_code == 200
    time_machine.move_to(timezone.now() + timedelta(minutes=31))
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("memberships:login"))


# --- API tokens -------------------------------------------------------------------------------------

@pytest.fixture
def membership_url(glow):
    from tests.factories import active_membership

    return f"/api/v1/memberships/{active_membership(tier=glow[0]).pk}/"


def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_works_until_it_expires_then_answers_401(front_desk, membership_url, time_machine, settings):
    settings.API_TOKEN_DAYS = 90
    token, key = issue_api_token(user=front_desk, name="EHR", actor=Actor.system(), now=timezone.now())
    assert token.expires_at - token.created_at == timedelta(days=90)
    assert api(key).get(membership_url).status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    time_machine.move_to(token.expires_at + timedelta(seconds=1))
    expired = api(key).get(membership_url)
    assert expired.status_code == 401 and expired["WWW-Authenticate"] == "Token"
    assert "expired" in expired.json()["detail"]


def test_only_the_digest_is_stored(front_desk):
    token, key = issue_api_token(user=front_desk, name="EHR", actor=Actor.system(), now=timezone.now())
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in {str(v) for v in row.values()} and row["prefix"] == key[:8]


def test_a_revoked_token_answers_401_at_once(front_desk, manager, membership_url):
    token, key = issue_api_token(user=front_desk, name="EHR", actor=Actor.system(), now=timezone.now())
    assert api(key).get(membership_url).status_code == 200
    revoke_api_tokens(tokens=[token], actor=Actor.staff(manager), now=timezone.now())
    assert api(key).get(membership_url).status_code == 401
    assert api("not-a-key").get(membership_url).status_code == 401


def test_a_manager_revokes_their_practices_token_in_the_admin_and_not_anothers(client, manager, practice,
                                                                                 membership_url):
    desk = staff_user(FRONT_DESK, practice, username="desk")
    ours, key = issue_api_token(user=desk, name="EHR", actor=Actor.system(), now=timezone.now())
    elsewhere = PracticeFactory(slug="elsewhere", name="Elsewhere Skin")
    theirs, their_key = issue_api_token(user=staff_user(FRONT_DESK, elsewhere, username="far"), name="Zap",
                                        actor=Actor.system(), now=timezone.now())
    client.force_login(manager)
    listing = client.get(reverse("admin:memberships_apitoken_changelist")).content.decode()
    assert ours.prefix in listing and theirs.prefix not in listing
    response = client.post(reverse("admin:memberships_apitoken_changelist"), {
        "action": "revoke", "_selected_action": [ours.pk, theirs.pk]}, REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302
    assert api(key).get(membership_url).status_code == 401
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None  # not in their list: untouched
    ours.refresh_from_db()
    assert ours.revoked_by == manager
    row = AuditLog.objects.get(action="api_token_revoke")
    assert row.user == manager and row.object_id == str(ours.pk) and row.ip_address == "192.0.2.10"


def test_a_superuser_issues_a_token_in_the_admin_and_sees_its_key_once(admin_client, practice, membership_url):
    desk = staff_user(FRONT_DESK, practice, username="desk")
    response = admin_client.post(reverse("admin:memberships_apitoken_add"),
                                 {"user": desk.pk, "name": "Zapier", "days": "30"})
    assert response.status_code == 200
    import re

    key = re.search(r'data-testid="api-token-key">([^<]+)<', response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert token.user == desk and token.expires_at - token.created_at == timedelta(days=30)
    assert api(key).get(membership_url).status_code == 200
    page = admin_client.get(reverse("admin:memberships_apitoken_change", args=[token.pk])).content.decode()
    assert key not in page and token.prefix in page


def test_a_manager_cannot_issue_tokens(client, manager):
    client.force_login(manager)
    assert client.get(reverse("admin:memberships_apitoken_add")).status_code == 403


def test_a_token_of_a_deactivated_user_answers_401(practice, membership_url):
    user = staff_user(MANAGER, practice, username="gone")
    _, key = issue_api_token(user=user, name="EHR", actor=Actor.system(), now=timezone.now())
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert api(key).get(membership_url).status_code == 401


def test_a_token_lasts_at_least_a_day(front_desk):
    with pytest.raises(ValueError):
        issue_api_token(user=front_desk, name="EHR", actor=Actor.system(), now=timezone.now(), days=0)
    assert not ApiToken.objects.exists()
