"""Reading through the API: members (search, filters, cursor pages), a member with balances, a
membership and its timeline — each in the user's practice only, each leaving audit rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from memberships import services
from memberships.models import AuditLog, MembershipStatus
from memberships.roles import CLINICIAN
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier, staff_user
from tests.memberships.api_support import redeem, token_client


@pytest.fixture
def api(front_desk):
    return token_client(front_desk)


def _walk(api, url, params):
    """Every page of a list, following `next`; returns the ids in order and the pages."""
    ids, pages, response = [], 0, api.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        ids += [row["id"] for row in body["results"]]
        pages += 1
        if not body["next"]:
            return ids, pages
        response = api.get(body["next"])


def test_members_list_walks_every_member_once_by_cursor_and_audits_each_shown(api, glow, front_desk):
    tier, _, _ = glow
    members = [active_membership(tier=tier).member for _ in range(5)]
    ids, pages = _walk(api, "/api/v1/members/", {"page_size": 2})
    assert ids == sorted(m.pk for m in members) and pages == 3
    rows = AuditLog.objects.filter(action="api_list_members", user=front_desk)
    assert sorted(rows.values_list("member_id", flat=True)) == sorted(m.pk for m in members)


def test_members_list_answers_an_object_with_results_and_links(api, glow):
    tier, _, _ = glow
    m = active_membership(tier=tier)
    body = api.get("/api/v1/members/").json()
    assert set(body) == {"next", "previous", "results"}
    assert body["results"] == [{
        "id": m.member_id, "member_number": m.member.member_number, "first_name": m.member.first_name,
        "last_name": m.member.last_name, "email": m.member.email, "phone": m.member.phone,
        "practice_id": tier.practice_id, "home_location_id": None,
        "membership_id": m.pk, "membership_status": "active"}]


def test_members_search_and_filters(api, glow, practice):
    tier, _, _ = glow
    priya = active_membership(tier=tier, member=MemberFactory(practice=practice, first_name="Priya",
                                                                last_name="Sharma", phone="+16265550199"))
    paused = active_membership(tier=tier)
    services.pause_membership(membership=paused, until=(timezone.now() + timedelta(days=9)).date(),
                              actor=services.Actor.system(), idempotency_key="p", now=timezone.now())
    for q in ["priya", "Sharma", "priya sh", "(626) 555-0199", priya.member.member_number, priya.member.email]:
        assert [r["id"] for r in api.get("/api/v1/members/", {"q": q}).json()["results"]] == [priya.member_id], q
    by_status = api.get("/api/v1/members/", {"status": MembershipStatus.PAUSED}).json()["results"]
    assert [r["id"] for r in by_status] == [paused.member_id]
    assert len(api.get("/api/v1/members/", {"tier_id": tier.pk}).json()["results"]) == 2
    assert api.get("/api/v1/members/", {"tier_id": tier.pk + 1000}).json()["results"] == []


@pytest.mark.parametrize("params,field", [({"status": "sleeping"}, "status"), ({"tier_id": "x"}, "tier_id"),
                                          ({"q": "a" * 101}, "q"), ({"tier_id": 2**63}, "tier_id")])
def test_bad_filters_are_400_with_the_field(api, glow, params, field):
    response = api.get("/api/v1/members/", params)
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert field in response.json()["fields"]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "cD1hYmM=", "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "\u00e9"])
def test_a_cursor_we_did_not_give_out_is_400(api, glow, cursor):
    """`cD1hYmM=` is "p=abc": a position that is not an id must not reach the database."""
    response = api.get("/api/v1/members/", {"cursor": cursor})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def test_member_detail_has_the_current_membership_with_balances_and_is_audited(api, glow, front_desk):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    body = api.get(f"/api/v1/members/{m.member_id}/").json()
    assert body["id"] == m.member_id and body["membership"]["id"] == m.pk
    facial_line = next(b for b in body["membership"]["balances"] if b["service_id"] == facial.pk)
    assert (facial_line["balance"], facial_line["available"]) == (1, 1)
    row = AuditLog.objects.get(action="api_view_member", member=m.member, user=front_desk)
    assert row.ip_address == "127.0.0.1"  # where the request came from


def test_membership_version_moves_with_the_ledger(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    before = api.get(f"/api/v1/memberships/{m.pk}/").json()["version"]
    redeem(api, m, {"service_id": facial.pk}, key="v")
    assert api.get(f"/api/v1/memberships/{m.pk}/").json()["version"] > before


def test_timeline_newest_first_filtered_paginated_and_audited(api, glow, front_desk):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    redeem(api, m, {"service_id": facial.pk}, key="t")
    url = f"/api/v1/memberships/{m.pk}/timeline/"
    events = api.get(url).json()["results"]
    assert events[0]["kind"] == "redeemed" and events[0]["payload"]["service_id"] == facial.pk
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert [e["kind"] for e in api.get(url, {"kind": "enrolled"}).json()["results"]] == ["enrolled"]
    ids, pages = _walk(api, url, {"page_size": 1})
    assert ids == [e["id"] for e in events] and pages == len(events)
    assert AuditLog.objects.filter(action="api_view_timeline", member=m.member, user=front_desk).exists()


def test_another_practice_is_invisible_everywhere(api, glow):
    other_tier, other_facial, _ = glow_tier(PracticeFactory(slug="elsewhere"))
    other = active_membership(tier=other_tier)
    for url in [f"/api/v1/members/{other.member_id}/", f"/api/v1/memberships/{other.pk}/",
                f"/api/v1/memberships/{other.pk}/timeline/", f"/api/v1/memberships/{other.pk}/holds/",
                f"/api/v1/tiers/{other_tier.pk}/", f"/api/v1/services/{other_facial.pk}/"]:
        response = api.get(url)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), url
    assert api.get("/api/v1/members/", {"q": other.member.member_number}).json()["results"] == []
    assert api.get("/api/v1/members/").json()["results"] == []
    assert other_tier.pk not in [t["id"] for t in api.get("/api/v1/tiers/").json()["results"]]


def test_tiers_and_services_read_with_filters(api, glow, practice):
    tier, facial, credit = glow
    body = api.get("/api/v1/tiers/").json()["results"]
    assert [t["id"] for t in body] == [tier.pk]
    facial_benefit = next(b for b in body[0]["benefits"] if b["service_id"] == facial.pk)
    assert facial_benefit["rollover_in_words"] == "carries over, up to 2"
    assert api.get("/api/v1/tiers/", {"active": "false"}).json()["results"] == []
    services_ = api.get("/api/v1/services/", {"kind": "credit"}).json()["results"]
    assert [s["id"] for s in services_] == [credit.pk]
    assert api.get(f"/api/v1/services/{facial.pk}/").json()["name"] == "HydraFacial"


def test_roles_every_staff_role_reads_and_no_one_else(glow, practice):
    tier, _, _ = glow
    m = active_membership(tier=tier)
    clinician = token_client(staff_user(CLINICIAN, practice))
    assert clinician.get(f"/api/v1/memberships/{m.pk}/").status_code == 200
    anonymous = APIClient().get(f"/api/v1/memberships/{m.pk}/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token nope")
    assert wrong.get("/api/v1/members/").status_code == 401
    from django.contrib.auth import get_user_model

    outsider = get_user_model().objects.create_user("outsider", password="x-Long-pass-1")
    response = token_client(outsider).get(f"/api/v1/memberships/{m.pk}/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
