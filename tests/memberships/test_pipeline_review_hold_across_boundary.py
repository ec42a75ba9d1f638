"""A unit held for an appointment booked across the cycle boundary is spared by the boundary only for
that appointment. Every free spend meanwhile — the desk's walk-in, the record's treatments spent
together by the inbox (`redeem_many`), a manager's downward correction — spends the new cycle's unit,
not the held one: so when the appointment is then a no-show, the held unit expires and the member
does not end up with a unit she never had (one this month, used; last month's, held then released)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from memberships import services
from memberships.models import EntitlementBalance, Membership, RolloverRule
from memberships.services import redeem_batch
from tests.factories import ServiceFactory, TierBenefitFactory, active_membership

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()


def state(membership, service):
    row = EntitlementBalance.objects.get(membership=membership, service=service)
    return row.balance, row.reserved


@pytest.fixture
def held_across_boundary(glow):
    """One peel a cycle, use it or lose it: last cycle's unit held for an appointment after the
    boundary (spared by it), this cycle's unit free."""
    tier = glow[0]
    peel = ServiceFactory(practice=tier.practice, name="Chemical peel", code="peel")
    TierBenefitFactory(tier=tier, service=peel, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    membership = active_membership(tier=tier)
    now = timezone.now()
    hold = services.reserve_entitlement(membership=membership, service=peel, quantity=1, actor=SYSTEM,
                                        idempotency_key="hold-next-month", now=now)
    services.refill_entitlements(membership=membership, cycle_key="inv_cycle2", actor=services.Actor.processor(),
                                 now=now + timedelta(days=30))
    assert state(membership, peel) == (2, 1)          # last month's unit, held; this month's, free
    return membership, peel, hold, now + timedelta(days=31)


def test_a_no_show_after_a_walk_in_leaves_only_what_this_cycle_granted(held_across_boundary):
    membership, peel, hold, now = held_across_boundary
    # as the desk holds it (member and practice loaded): on PostgreSQL the one-call walk-in takes it
    desk_view = Membership.objects.select_related("member__practice", "tier").get(pk=membership.pk)
    services.redeem_entitlement(membership=desk_view, service=peel, quantity=1, actor=SYSTEM,
                                idempotency_key="walk-in", now=now)
    assert state(membership, peel) == (1, 1)
    services.release_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=2), reason="No-show")
    assert state(membership, peel) == (0, 0)


def test_the_booked_treatment_done_after_a_walk_in_spends_the_held_unit(held_across_boundary):
    membership, peel, hold, now = held_across_boundary
    services.redeem_entitlement(membership=membership, service=peel, quantity=1, actor=SYSTEM,
                                idempotency_key="walk-in", now=now)
    services.commit_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=2))
    assert state(membership, peel) == (0, 0)


def test_a_treatment_spent_in_the_inbox_s_batch_leaves_the_held_unit_to_expire_at_a_no_show(held_across_boundary):
    membership, peel, hold, now = held_across_boundary
    with transaction.atomic():
        locked = redeem_batch.locked_memberships([membership.pk], practices={peel.practice_id: peel.practice})
        [outcome] = redeem_batch.redeem_many(
            redemptions=[redeem_batch.Redemption(membership=locked[membership.pk], service=peel, quantity=1,
                                                 idempotency_key="record-visit", reason="Treatment")],
            actor=services.Actor.record(), now=now)
    assert outcome.error is None
    assert state(membership, peel) == (1, 1)
    services.release_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=2), reason="No-show")
    assert state(membership, peel) == (0, 0)


def test_a_manager_s_correction_down_leaves_the_held_unit_to_expire_at_a_no_show(held_across_boundary, manager):
    membership, peel, hold, now = held_across_boundary
    services.adjust_balance(membership=membership, service=peel, quantity=-1, actor=services.Actor.staff(manager),
                            reason="Peel given at an event, not booked", idempotency_key="adjust-down", now=now)
    assert state(membership, peel) == (1, 1)
    services.release_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=2), reason="No-show")
    assert state(membership, peel) == (0, 0)
