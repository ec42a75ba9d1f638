"""The REST API under /api/v1/: staff only, JSON errors with a stable code, never a 500."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from memberships.auth import issue_api_token
from memberships.models import EntitlementBalance, LedgerEntry
from memberships.roles import FRONT_DESK
from memberships.services import Actor
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier, staff_user
from tests.memberships.api_support import redeem


@pytest.fixture
def api(front_desk):
    client = APIClient()
    client.force_authenticate(front_desk)
    return client


def test_redeem_201_and_replay_returns_same_body(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    first = redeem(api, m, {"service_id": facial.pk, "quantity": 1})
    assert first.status_code == 201, first.content
    assert first.json()["balance_after"] == 0 and first.json()["quantity"] == 1
    again = redeem(api, m, {"service_id": facial.pk, "quantity": 1})
    assert again.status_code == 201 and again.json() == first.json()
    assert LedgerEntry.objects.filter(membership=m, kind="redeem").count() == 1


def test_insufficient_balance_is_409_with_code(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    redeem(api, m, {"service_id": facial.pk}, key="a")
    response = redeem(api, m, {"service_id": facial.pk}, key="b")
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_balance"


@pytest.mark.parametrize("body,field", [
    ({"service_id": "abc"}, "service_id"),
    ({"quantity": 1}, "service_id"),
    ({"service_id": 1, "quantity": -1}, "quantity"),
    ({"service_id": 1, "quantity": 0}, "quantity"),
    ({"service_id": 1, "quantity": "lots"}, "quantity"),
    ({"service_id": 999999}, "service_id"),
])
def test_bad_input_is_400_with_field_errors_and_changes_nothing(api, glow, body, field):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    response = redeem(api, m, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1


def test_missing_idempotency_key_is_400(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    response = redeem(api, m, {"service_id": facial.pk}, key=None)
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_required"
    assert not LedgerEntry.objects.filter(membership=m, kind="redeem").exists()


def test_malformed_json_is_400_not_500(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    response = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", "{not json", content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="x")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_paused_membership_is_409(api, glow):
    from datetime import timedelta
    from django.utils import timezone
    from memberships import services

    tier, facial, _ = glow
    m = active_membership(tier=tier)
    services.pause_membership(membership=m, until=(timezone.now() + timedelta(days=9)).date(),
                              actor=services.Actor.system(), idempotency_key="p", now=timezone.now())
    response = redeem(api, m, {"service_id": facial.pk})
    assert response.status_code == 409 and response.json()["code"] == "membership_not_redeemable"


def test_search_and_detail(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier, member=MemberFactory(practice=tier.practice, first_name="Priya",
                                                          last_name="Sharma", phone="+16265550199"))
    for q in ["priya", "Sharma", "priya sh", "(626) 555-0199", m.member.member_number, m.member.email]:
        results = api.get("/api/v1/members/", {"q": q}).json()["results"]
        assert [r["id"] for r in results] == [m.member_id], q
    detail = api.get(f"/api/v1/memberships/{m.pk}/").json()
    facial_line = next(b for b in detail["balances"] if b["service_id"] == facial.pk)
    assert facial_line["balance"] == 1 and facial_line["rollover_in_words"] == "carries over, up to 2"


def test_other_practice_is_invisible(api, glow):
    other_tier, other_facial, _ = glow_tier(PracticeFactory(slug="elsewhere"))
    other = active_membership(tier=other_tier)
    assert api.get(f"/api/v1/memberships/{other.pk}/").status_code == 404
    assert redeem(api, other, {"service_id": other_facial.pk}).status_code == 404
    assert api.get("/api/v1/members/", {"q": other.member.member_number}).json()["results"] == []


def test_anonymous_and_non_staff_are_refused(glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/memberships/{m.pk}/").status_code in (401, 403)
    outsider = get_user_model().objects.create_user("outsider", password="x-Long-pass-1")
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.get(f"/api/v1/memberships/{m.pk}/").status_code == 403


def test_token_auth(glow, practice):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    user = staff_user(FRONT_DESK, practice, username="desk2")
    _, key = issue_api_token(user=user, name="test", actor=Actor.system(), now=timezone.now())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(f"/api/v1/memberships/{m.pk}/").status_code == 200


def test_openapi_schema_and_docs(api, client, manager):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/memberships/{id}/redemptions/" in schema.content
    client.force_login(manager)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.mark.django_db
def test_staff_without_profile_cannot_spend_other_practice(glow):
    """A staff user of no practice (no StaffProfile) sees and spends nothing through the API."""
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    user = get_user_model().objects.create_user(username="drifter", password="x")
    user.groups.add(Group.objects.get(name=FRONT_DESK))
    api = APIClient()
    api.force_authenticate(user)
    r = api.get("/api/v1/members/", {"q": m.member.last_name})
    seen = api.get(f"/api/v1/memberships/{m.pk}/")
    spent = api.post(f"/api/v1/memberships/{m.pk}/redemptions/", {"service_id": facial.pk}, format="json",
                     HTTP_IDEMPOTENCY_KEY="x")
    assert (r.status_code, seen.status_code, spent.status_code) == (403, 403, 403)
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1


@pytest.mark.django_db
@pytest.mark.parametrize("path_pk,service_id", [(None, 2**63), (None, 10**30), (2**63, 1)])
def test_api_huge_ids_are_json_errors(glow, front_desk, path_pk, service_id):
    """Ids out of range are JSON errors with a code, never a 500."""
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(front_desk)
    r = api.post(f"/api/v1/memberships/{path_pk or m.pk}/redemptions/", {"service_id": service_id},
                 format="json", HTTP_IDEMPOTENCY_KEY="huge")
    assert r.status_code < 500, r.status_code
    assert "code" in r.json()
