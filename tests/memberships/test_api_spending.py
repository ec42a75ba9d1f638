"""Spending through the API: redemptions exactly once per Idempotency-Key, reversal by the pages'
rule (staff their own the same day, a manager anything), and holds (reserve → commit | release) —
each through the ledger's service, each refusal a JSON code that changes nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from memberships.models import AuditLog, EntitlementBalance, LedgerEntry, Reservation
from memberships.roles import CLINICIAN, FRONT_DESK
from tests.factories import PracticeFactory, active_membership, glow_tier, staff_user
from tests.memberships.api_support import hold, redeem, token_client


@pytest.fixture
def api(front_desk):
    return token_client(front_desk)


def _balance(membership, service) -> tuple[int, int]:
    row = EntitlementBalance.objects.get(membership=membership, service=service)
    return row.balance, row.reserved


def test_same_key_twice_is_one_redemption_and_the_same_answer(api, glow, front_desk):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    first = redeem(api, m, {"service_id": credit.pk, "quantity": 1500}, key="same")
    again = redeem(api, m, {"service_id": credit.pk, "quantity": 1500}, key="same")
    assert (first.status_code, again.status_code) == (201, 201) and again.json() == first.json()
    assert (first["Idempotent-Replayed"], again["Idempotent-Replayed"]) == ("false", "true")
    assert _balance(m, credit) == (3500, 0)
    assert LedgerEntry.objects.filter(membership=m, kind="redeem").count() == 1
    assert AuditLog.objects.filter(action="redeem", user=front_desk, member=m.member).count() == 1
    assert AuditLog.objects.filter(action="api_redeem_replayed", user=front_desk).count() == 1


def test_same_key_for_another_redemption_is_409_and_spends_nothing(api, glow):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    redeem(api, m, {"service_id": credit.pk, "quantity": 100}, key="k")
    response = redeem(api, m, {"service_id": credit.pk, "quantity": 200}, key="k")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_key_reused"
    assert _balance(m, credit) == (4900, 0)


@pytest.mark.parametrize("key,code", [(None, "idempotency_key_required"), ("", "idempotency_key_required"),
                                      ("k" * 151, "idempotency_key_invalid"), ("caf\u00e9", "idempotency_key_invalid"),
                                      ("two words", "idempotency_key_invalid")])
def test_idempotency_key_missing_or_out_of_bounds_is_400(api, glow, key, code):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    response = redeem(api, m, {"service_id": facial.pk}, key=key)
    assert response.status_code == 400 and response.json()["code"] == code
    assert _balance(m, facial) == (1, 0)


def test_a_key_of_150_characters_is_accepted(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    assert redeem(api, m, {"service_id": facial.pk}, key="k" * 150).status_code == 201


def test_a_chart_version_older_than_the_balance_is_409_stale_chart(api, glow):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    version = api.get(f"/api/v1/memberships/{m.pk}/").json()["version"]
    redeem(api, m, {"service_id": credit.pk, "quantity": 100}, key="elsewhere")
    response = redeem(api, m, {"service_id": credit.pk, "quantity": 100, "chart_version": version}, key="mine")
    assert response.status_code == 409 and response.json()["code"] == "stale_chart"
    assert _balance(m, credit) == (4900, 0)


def test_clinician_redeems_and_another_practice_is_404(glow, practice):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    clinician = token_client(staff_user(CLINICIAN, practice))
    assert redeem(clinician, m, {"service_id": facial.pk}).status_code == 201
    other_tier, other_facial, _ = glow_tier(PracticeFactory(slug="elsewhere"))
    other = active_membership(tier=other_tier)
    response = redeem(clinician, other, {"service_id": other_facial.pk})
    assert response.status_code == 404 and _balance(other, other_facial) == (1, 0)


def _reverse(client, entry_id, body):
    return client.post(f"/api/v1/redemptions/{entry_id}/reverse/", body, format="json")


def test_front_desk_reverses_its_own_redemption_once(api, glow, front_desk):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    entry_id = redeem(api, m, {"service_id": facial.pk}).json()["id"]
    first = _reverse(api, entry_id, {"reason": "wrong member"})
    again = _reverse(api, entry_id, {"reason": "wrong member"})
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    assert first.json()["reverses_id"] == entry_id and first.json()["quantity"] == 1
    assert _balance(m, facial) == (1, 0)
    assert AuditLog.objects.filter(action="api_reverse", user=front_desk, member=m.member).count() == 1


def test_someone_elses_redemption_or_a_dispute_is_a_managers(api, glow, practice, manager):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    clinician = token_client(staff_user(CLINICIAN, practice))
    entry_id = redeem(clinician, m, {"service_id": facial.pk}).json()["id"]
    refused = _reverse(api, entry_id, {"reason": "not mine"})
    assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    disputed = _reverse(clinician, entry_id, {"reason": "member disputes", "dispute": True})
    assert disputed.status_code == 403 and _balance(m, facial) == (0, 0)
    done = _reverse(token_client(manager), entry_id, {"reason": "member disputes", "dispute": True})
    assert done.status_code == 201 and done.json()["dispute"] is True and _balance(m, facial) == (1, 0)


def test_reversal_needs_a_reason_and_stays_in_the_practice(api, glow, manager):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    entry_id = redeem(api, m, {"service_id": facial.pk}).json()["id"]
    assert _reverse(api, entry_id, {}).json()["fields"] == {"reason": ["This field is required."]}
    other_tier, other_facial, _ = glow_tier(PracticeFactory(slug="elsewhere"))
    other = active_membership(tier=other_tier)
    theirs = redeem(token_client(staff_user(FRONT_DESK, other_tier.practice)), other,
                    {"service_id": other_facial.pk}).json()["id"]
    assert _reverse(token_client(manager), theirs, {"reason": "x"}).status_code == 404
    assert _balance(other, other_facial) == (0, 0)


def test_hold_then_commit_spends_once(api, glow, front_desk):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    held = hold(api, m, {"service_id": facial.pk, "external_ref": "appt-1"})
    assert held.status_code == 201 and held.json()["status"] == "held"
    assert hold(api, m, {"service_id": facial.pk, "external_ref": "appt-1"}).json()["id"] == held.json()["id"]
    assert _balance(m, facial) == (1, 1)
    balances = api.get(f"/api/v1/memberships/{m.pk}/").json()["balances"]
    line = next(b for b in balances if b["service_id"] == facial.pk)
    assert (line["balance"], line["reserved"], line["available"]) == (1, 1, 0)
    assert redeem(api, m, {"service_id": facial.pk}).json()["code"] == "insufficient_balance"
    url = f"/api/v1/holds/{held.json()['id']}/"
    committed = api.post(url + "commit/")
    assert committed.status_code == 200 and committed.json()["status"] == "committed"
    assert api.post(url + "commit/").json()["entry_id"] == committed.json()["entry_id"]
    assert _balance(m, facial) == (0, 0)
    released = api.post(url + "release/")
    assert released.status_code == 409 and released.json()["code"] == "illegal_transition"
    # Every answer showed member data: two holds (one a replay) and two commits, four rows.
    # The hold and the commit each audited once, by their doors; the replays wrote nothing.
    assert AuditLog.objects.filter(action__in=["api_hold", "api_commit_hold"], user=front_desk).count() == 2


def test_released_hold_gives_the_units_back_and_cannot_be_committed(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    hold_id = hold(api, m, {"service_id": facial.pk}).json()["id"]
    assert api.post(f"/api/v1/holds/{hold_id}/release/").json()["status"] == "released"
    assert api.post(f"/api/v1/holds/{hold_id}/release/").status_code == 200
    assert _balance(m, facial) == (1, 0)
    response = api.post(f"/api/v1/holds/{hold_id}/commit/")
    assert response.status_code == 409 and response.json()["code"] == "illegal_transition"
    assert [h["id"] for h in api.get(f"/api/v1/memberships/{m.pk}/holds/", {"status": "released"}).json()["results"]] \
        == [hold_id]


def test_holds_refuse_what_is_not_there_and_other_practices(api, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    too_many = hold(api, m, {"service_id": facial.pk, "quantity": 2})
    assert too_many.status_code == 409 and too_many.json()["code"] == "insufficient_balance"
    reused = hold(api, active_membership(tier=tier), {"service_id": facial.pk}, key="h-1")
    hold(api, m, {"service_id": facial.pk}, key="h-2")
    again = hold(api, m, {"service_id": facial.pk}, key="h-1")
    assert reused.status_code == 201 and again.json()["code"] == "idempotency_key_reused"
    other_tier, other_facial, _ = glow_tier(PracticeFactory(slug="elsewhere"))
    other = active_membership(tier=other_tier)
    theirs = Reservation.objects.create(membership=other, service=other_facial, quantity=1, idempotency_key="x",
                                        created_at=other.started_at)
    for path in ["", "commit/", "release/"]:
        call = api.get if not path else api.post
        assert call(f"/api/v1/holds/{theirs.pk}/{path}").status_code == 404
    assert Reservation.objects.get(pk=theirs.pk).status == "held"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_redeem_once(glow, front_desk):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    clients = [token_client(front_desk) for _ in range(4)]
    answers, barrier = [], threading.Barrier(len(clients))

    def go(client):
        barrier.wait()
        try:
            answers.append(redeem(client, m, {"service_id": credit.pk, "quantity": 700}, key="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert _balance(m, credit) == (4300, 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_of_the_last_unit_let_one_through(glow, front_desk):
    """Four desks hold the last facial at once (different keys): one hold, three 409s, no error."""
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    clients = [token_client(front_desk) for _ in range(4)]
    answers, barrier = [], threading.Barrier(len(clients))

    def go(n, client):
        barrier.wait()
        try:
            answers.append(hold(client, m, {"service_id": facial.pk}, key=f"desk-{n}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=go, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"insufficient_balance"}
    assert _balance(m, facial) == (1, 1) and Reservation.objects.filter(membership=m).count() == 1
