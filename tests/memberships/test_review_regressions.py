"""Regressions found in review: concurrent replays, holds at expiry, first-to-expire consumption,
withdrawn tier changes, practice scoping of the API and the admin, frozen credit, racing enrolments,
carry-over caps after a tier change."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from memberships import services
from memberships.models import EntitlementBalance, LedgerEntry, Membership, RolloverRule
from memberships.roles import FRONT_DESK, MANAGER
from tests.factories import (MemberFactory, PracticeFactory, ServiceFactory, TierBenefitFactory, TierFactory,
                             active_membership, glow_tier, staff_user)
from tests.memberships.ledger_checks import assert_ledger_consistent, hammer

SYSTEM = services.Actor.system()
NOW = timezone.now()


def refill(m, key, now=NOW):
    return services.refill_entitlements(membership=m, cycle_key=key, actor=services.Actor.processor(), now=now)


# F1: a replay of one key that races its twin on the last unit answers InsufficientBalance
@pytest.mark.postgres
@pytest.mark.xdist_group("pg-threads")
@pytest.mark.django_db(transaction=True)
def test_concurrent_replay_of_last_unit_returns_first_entry(glow):
    tier, facial, _ = glow
    fails = 0
    for attempt in range(10):
        m = active_membership(tier=tier)
        results, errors = hammer(lambda i: services.redeem_entitlement(
            membership=m, service=facial, actor=SYSTEM, idempotency_key=f"dbl-{attempt}", now=NOW), n=8)
        fails += len(errors)
    assert fails == 0, f"{fails} replays of an already-spent key answered InsufficientBalance"


@pytest.mark.postgres
@pytest.mark.xdist_group("pg-threads")
@pytest.mark.django_db(transaction=True)
def test_concurrent_replay_of_reverse_returns_first_reversal(glow):
    tier, facial, _ = glow
    fails = 0
    for attempt in range(10):
        m = active_membership(tier=tier)
        e = services.redeem_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key=f"r-{attempt}", now=NOW)
        results, errors = hammer(lambda i: services.reverse_entry(
            entry=e, actor=SYSTEM, reason="oops", idempotency_key=f"rev-{attempt}", now=NOW), n=8)
        fails += len(errors)
    assert fails == 0, f"{fails} replays answered AlreadyReversed"


# F2: a use-it-or-lose-it lot with any unit on hold does not expire at all
@pytest.mark.django_db
def test_held_unit_keeps_whole_expiring_lot_alive(glow):
    tier, facial, credit = glow  # credit: 5000c/cycle, rollover NONE
    m = active_membership(tier=tier)
    services.reserve_entitlement(membership=m, service=credit, quantity=1000, actor=SYSTEM,
                                 idempotency_key="hold-1", now=NOW)
    refill(m, "inv_2", now=NOW + timedelta(days=30))
    bal = EntitlementBalance.objects.get(membership=m, service=credit)
    assert_ledger_consistent(m)
    # expected: 1000 still held from last cycle + 5000 new = 6000; 4000 unheld should have expired
    assert bal.balance == 6000, bal.balance


# F3: oldest-first consumption spends never-expiring credit before this cycle's expiring credit
@pytest.mark.django_db
def test_opening_balance_consumed_before_expiring_cycle_lot(practice, manager):
    laser = ServiceFactory(practice=practice, name="Laser", code="laser")
    tier = TierFactory(practice=practice, code="t", name="T", price_cents=100)
    TierBenefitFactory(tier=tier, service=laser, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    member = MemberFactory(practice=practice)
    m = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e", now=NOW)
    services.grant_opening_balance(membership=m, service=laser, quantity=1, actor=SYSTEM,
                                   idempotency_key="open", now=NOW)
    m = refill(m, "inv_1", now=NOW + timedelta(seconds=1))
    services.redeem_entitlement(membership=m, service=laser, actor=SYSTEM, idempotency_key="r",
                                now=NOW + timedelta(days=1))
    refill(m, "inv_2", now=NOW + timedelta(days=30))
    # member used 1 of 2 in cycle 1; the monthly one should have been the one spent, keeping the
    # imported one: 1 (import) + 1 (cycle 2) = 2
    assert EntitlementBalance.objects.get(membership=m, service=laser).balance == 2


# F4: a scheduled tier change cannot be withdrawn
@pytest.mark.django_db
def test_scheduled_downgrade_can_be_withdrawn(glow):
    tier, facial, credit = glow
    lite = TierFactory(practice=tier.practice, code="lite", name="Lite", price_cents=9900)
    m = active_membership(tier=tier)
    services.change_tier(membership=m, new_tier=lite, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="c1", now=NOW)
    m = services.change_tier(membership=m, new_tier=tier, effective="next_cycle", actor=SYSTEM,
                             idempotency_key="c2", now=NOW)
    assert m.pending_tier is None
    assert refill(m, "inv_2", now=NOW + timedelta(days=30)).tier == tier


# F5: API user without a StaffProfile sees and spends in every practice
@pytest.mark.django_db
def test_staff_without_profile_cannot_spend_other_practice(glow):
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


# F6: API 500 on out-of-range ids
@pytest.mark.django_db
@pytest.mark.parametrize("path_pk,service_id", [(None, 2**63), (None, 10**30), (2**63, 1)])
def test_api_huge_ids_are_json_errors(glow, front_desk, path_pk, service_id):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(front_desk)
    r = api.post(f"/api/v1/memberships/{path_pk or m.pk}/redemptions/", {"service_id": service_id},
                 format="json", HTTP_IDEMPOTENCY_KEY="huge")
    assert r.status_code < 500, r.status_code
    assert "code" in r.json()


# F7: a manager of practice A reverses practice B's entries through the admin
@pytest.mark.django_db
def test_manager_of_other_practice_cannot_reverse_in_admin(glow, client):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    e = services.redeem_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key="r", now=NOW)
    other = PracticeFactory(slug="other")
    mgr = staff_user(MANAGER, other, username="mgr-other")
    client.force_login(mgr)
    lst = client.get("/admin/memberships/ledgerentry/")
    assert lst.status_code == 200 and lst.context["cl"].result_count == 0
    client.post("/admin/memberships/ledgerentry/", {"action": "reverse_selected", "_selected_action": [e.pk],
                                                      "apply": "1", "reason": "mine now"})
    assert not LedgerEntry.objects.filter(reverses=e).exists(), "reversed by another practice's manager"


# F8: a balance re-credited after frozen expiry never expires again
@pytest.mark.django_db
def test_reversal_after_frozen_expiry_expires_again(glow):
    tier, facial, credit = glow
    m = active_membership(tier=tier)
    e = services.redeem_entitlement(membership=m, service=credit, quantity=1000, actor=SYSTEM,
                                    idempotency_key="r", now=NOW)
    services.cancel_membership(membership=m, actor=SYSTEM, idempotency_key="c", now=NOW)
    later = NOW + timedelta(days=60)
    services.expire_frozen_balances(membership=m, actor=SYSTEM, now=later)
    services.reverse_entry(entry=e, actor=SYSTEM, reason="billing dispute", idempotency_key="rv", now=later)
    services.expire_frozen_balances(membership=m, actor=SYSTEM, now=later + timedelta(days=1))
    assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 0


@pytest.mark.postgres
@pytest.mark.xdist_group("pg-threads")
@pytest.mark.django_db(transaction=True)
def test_two_enrolments_with_different_keys_give_domain_error(glow):
    tier, *_ = glow
    member = MemberFactory(practice=tier.practice)
    _, errors = hammer(lambda i: services.enroll_member(member=member, tier=tier, actor=SYSTEM,
                                                     idempotency_key=f"form-{i}", now=NOW), n=4)
    assert Membership.objects.filter(member=member).count() == 1
    assert {type(e).__name__ for e in errors} <= {"IllegalTransition"}, [repr(e)[:120] for e in errors]


@pytest.mark.django_db
def test_carried_units_obey_a_cap_after_moving_to_use_it_or_lose_it(glow):
    tier, facial, credit = glow  # facial: carry over, cap 2
    basic = TierFactory(practice=tier.practice, code="basic", name="Basic", price_cents=9900)
    TierBenefitFactory(tier=basic, service=facial, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    m = active_membership(tier=tier)
    for i in range(2, 4):
        services.refill_entitlements(membership=m, cycle_key=f"inv_{i}", actor=SYSTEM, now=NOW + timedelta(days=30 * i))
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 3  # cap 2 + 1
    services.change_tier(membership=m, new_tier=basic, effective="next_cycle", actor=SYSTEM, idempotency_key="c", now=NOW)
    for i in range(4, 10):
        services.refill_entitlements(membership=m, cycle_key=f"inv_{i}", actor=SYSTEM, now=NOW + timedelta(days=30 * i))
    bal = EntitlementBalance.objects.get(membership=m, service=facial).balance
    assert bal == 1, bal  # Basic does not carry facials over: only this cycle's one
