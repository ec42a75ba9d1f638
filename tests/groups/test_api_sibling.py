"""The staff API reaches a member of the group as the visit page does: a front desk of a sibling
practice finds the member (`q`), reads them and their membership (balances, the tier's rule, whether
it may be redeemed at this desk) and redeems where the tier allows — exactly once per Idempotency-Key,
the entry and the audit rows recording the desk's location — and is refused with a JSON code
(`not_redeemable_here`, naming the home location) where the tier keeps benefits at home, spending
nothing. The member's timeline, holds and reversals stay with the member's practice; staff of another
group or of an unrelated practice get 404 for all of it."""

from __future__ import annotations

import pytest

from memberships.models import AuditLog, EntitlementBalance, LedgerEntry, Location, RedeemableAt, StaffProfile
from memberships.roles import FRONT_DESK
from tests.factories import PracticeFactory, staff_user
from tests.memberships.api_support import redeem, token_client
from tests.memberships.ledger_checks import hammer

from .redeem_world import build

THREADS = 20


@pytest.fixture
def world(db):
    return build()


def _facial(world) -> int:
    return EntitlementBalance.objects.get(membership=world.membership, service=world.facial).balance


def _redemptions(world):
    return list(LedgerEntry.objects.filter(membership=world.membership, kind="redeem")
                .values_list("service_id", "quantity", "location_id", "actor_user_id"))


def _home_only(world):
    world.tier.redeemable_at = RedeemableAt.HOME
    world.tier.save(update_fields=["redeemable_at"])


@pytest.mark.django_db
def test_a_sibling_desk_finds_reads_and_redeems_once_through_the_api(world):
    api = token_client(world.harbor_desk)
    found = api.get("/api/v1/members/", {"q": "Garcia"})
    assert found.status_code == 200
    rows = found.json()["results"]
    assert [(r["id"], r["practice_id"], r["home_location_id"], r["membership_id"]) for r in rows] == [
        (world.ana.pk, world.glow.pk, world.pasadena.pk, world.membership.pk)]
    listed = AuditLog.objects.get(action="api_list_members")
    assert (listed.member_id, listed.user_id, listed.location_id) == (
        world.ana.pk, world.harbor_desk.pk, world.harbor.pk)
    assert api.get("/api/v1/members/").json()["results"] == []        # browsing stays with Harbor's own members

    member = api.get(f"/api/v1/members/{world.ana.pk}/")
    assert member.status_code == 200
    membership = member.json()["membership"]
    assert (membership["id"], membership["redeemable_at"], membership["redeemable_here"]) == (
        world.membership.pk, "group", True)
    assert {b["service_id"]: b["available"] for b in membership["balances"]}[world.facial.pk] == 1
    detail = api.get(f"/api/v1/memberships/{world.membership.pk}/")
    assert detail.status_code == 200 and detail.json()["redeemable_here"] is True
    assert AuditLog.objects.filter(action__in=["api_view_member", "api_view_membership"], member=world.ana,
                                   location=world.harbor).count() == 2

    body = {"service_id": world.facial.pk, "quantity": 1, "chart_version": membership["version"]}
    first = redeem(api, world.membership, body, key="harbor-1")
    again = redeem(api, world.membership, body, key="harbor-1")
    assert (first.status_code, first["Idempotent-Replayed"]) == (201, "false")
    assert (again.status_code, again["Idempotent-Replayed"], again.json()["id"]) == (201, "true", first.json()["id"])
    assert _redemptions(world) == [(world.facial.pk, -1, world.harbor.pk, world.harbor_desk.pk)]
    assert _facial(world) == 0
    done = AuditLog.objects.get(action="redeem", member=world.ana)
    assert (done.user_id, done.location_id) == (world.harbor_desk.pk, world.harbor.pk)
    empty = redeem(api, world.membership, {"service_id": world.facial.pk}, key="harbor-2")
    assert (empty.status_code, empty.json()["code"]) == (409, "insufficient_balance")


@pytest.mark.django_db
def test_a_home_only_tier_is_refused_at_a_sibling_with_a_code_and_nothing_is_spent(world):
    _home_only(world)
    api = token_client(world.harbor_desk)
    membership = api.get(f"/api/v1/members/{world.ana.pk}/").json()["membership"]
    assert (membership["redeemable_at"], membership["redeemable_here"]) == ("home", False)
    refused = redeem(api, world.membership, {"service_id": world.facial.pk}, key="harbor-home")
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_redeemable_here" and "only at Pasadena" in refused.json()["detail"]
    assert _redemptions(world) == [] and _facial(world) == 1
    assert not AuditLog.objects.filter(action="redeem").exists()

    # Old Town is Ana's own practice but not her home: refused the same way; Pasadena redeems.
    assert redeem(token_client(world.old_town_desk), world.membership, {"service_id": world.facial.pk},
                  key="old-town").json()["code"] == "not_redeemable_here"
    home = token_client(world.pasadena_desk)
    assert home.get(f"/api/v1/memberships/{world.membership.pk}/").json()["redeemable_here"] is True
    assert redeem(home, world.membership, {"service_id": world.facial.pk}, key="home").status_code == 201
    assert _redemptions(world) == [(world.facial.pk, -1, world.pasadena.pk, world.pasadena_desk.pk)]


@pytest.mark.django_db
def test_a_sibling_desk_with_no_location_chosen_may_not_redeem_a_home_only_tier(world):
    _home_only(world)
    StaffProfile.objects.filter(user=world.harbor_desk).update(location=None)
    refused = redeem(token_client(world.harbor_desk), world.membership, {"service_id": world.facial.pk}, key="k")
    assert (refused.status_code, refused.json()["code"]) == (409, "not_redeemable_here")
    assert _facial(world) == 1


@pytest.mark.django_db
def test_the_members_other_records_stay_with_its_practice(world):
    api = token_client(world.harbor_desk)
    entry = LedgerEntry.objects.filter(membership=world.membership).first()
    base = f"/api/v1/memberships/{world.membership.pk}"
    for path in (f"{base}/timeline/", f"{base}/holds/"):
        assert api.get(path).status_code == 404, path
    held = api.post(f"/api/v1/memberships/{world.membership.pk}/holds/", {"service_id": world.facial.pk},
                    format="json", HTTP_IDEMPOTENCY_KEY="h")
    assert held.status_code == 404
    reversed_ = api.post(f"/api/v1/redemptions/{entry.pk}/reverse/", {"reason": "x"}, format="json")
    assert reversed_.status_code == 404


@pytest.mark.django_db
def test_staff_of_another_group_or_an_unrelated_practice_get_404(world):
    loner = PracticeFactory(slug="loner", name="Lone Spa")
    loner_desk = staff_user(FRONT_DESK, loner, username="desk-loner")
    StaffProfile.objects.filter(user=loner_desk).update(location=Location.objects.create(practice=loner, name="Solo"))
    for desk in (world.elsewhere_desk, loner_desk):
        api = token_client(desk)
        assert api.get("/api/v1/members/", {"q": "Garcia"}).json()["results"] == []
        assert api.get("/api/v1/members/", {"q": world.ana.member_number}).json()["results"] == []
        for path in (f"/api/v1/members/{world.ana.pk}/", f"/api/v1/memberships/{world.membership.pk}/"):
            answer = api.get(path)
            assert (answer.status_code, answer.json()["code"]) == (404, "not_found"), path
        refused = redeem(api, world.membership, {"service_id": world.facial.pk}, key="theirs")
        assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert _redemptions(world) == [] and _facial(world) == 1
    assert not AuditLog.objects.filter(member=world.ana).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_requests_from_a_sibling_desk_at_once_redeem_exactly_once():
    world = build()
    clients = [token_client(world.harbor_desk) for _ in range(THREADS)]
    body = {"service_id": world.facial.pk}
    results, errors = hammer(lambda i: redeem(clients[i], world.membership, body, key="one-tap"), THREADS)
    assert errors == [] and [a.status_code for a in results] == [201] * THREADS
    assert len({a.json()["id"] for a in results}) == 1
    assert sorted(a["Idempotent-Replayed"] for a in results) == ["false"] + ["true"] * (THREADS - 1)
    assert _redemptions(world) == [(world.facial.pk, -1, world.harbor.pk, world.harbor_desk.pk)]

    # Different keys for the same last unit of product credit's worth: exactly what the balance holds.
    credit = EntitlementBalance.objects.get(membership=world.membership, service=world.credit).balance
    each = credit // 4
    results, errors = hammer(lambda i: redeem(clients[i], world.membership,
                                              {"service_id": world.credit.pk, "quantity": each}, key=f"desk-{i}"),
                             THREADS)
    assert errors == []
    assert sorted(a.status_code for a in results) == [201] * 4 + [409] * (THREADS - 4)
    assert {a.json()["code"] for a in results if a.status_code == 409} == {"insufficient_balance"}
    left = EntitlementBalance.objects.get(membership=world.membership, service=world.credit).balance
    assert left == credit - 4 * each


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_requests_for_a_home_only_tier_at_a_sibling_spend_nothing():
    world = build()
    _home_only(world)
    clients = [token_client(world.harbor_desk) for _ in range(THREADS)]
    results, errors = hammer(lambda i: redeem(clients[i], world.membership, {"service_id": world.facial.pk},
                                              key=f"k-{i % 3}"), THREADS)
    assert errors == []
    assert {(a.status_code, a.json()["code"]) for a in results} == {(409, "not_redeemable_here")}
    assert _redemptions(world) == [] and _facial(world) == 1
