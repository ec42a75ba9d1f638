"""A unit held for an appointment booked across the cycle boundary is spared by the boundary only for
that appointment. A walk-in of the same service meanwhile spends the new cycle's unit, not the held
one: so when the appointment is then a no-show, the held unit expires and the member does not end up
with a unit she never had (one this month, used; last month's, held then released)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from memberships import services
from memberships.models import EntitlementBalance, Membership, RolloverRule
from tests.factories import ServiceFactory, TierBenefitFactory, active_membership

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()


def state(membership, service):
    row = EntitlementBalance.objects.get(membership=membership, service=service)
    return row.balance, row.reserved


@pytest.fixture
def peel_member(glow):
    tier = glow[0]
    peel = ServiceFactory(practice=tier.practice, name="Chemical peel", code="peel")
    TierBenefitFactory(tier=tier, service=peel, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    return active_membership(tier=tier), peel


def test_a_no_show_after_a_walk_in_leaves_only_what_this_cycle_granted(peel_member):
    membership, peel = peel_member
    now = timezone.now()
    hold = services.reserve_entitlement(membership=membership, service=peel, quantity=1, actor=SYSTEM,
                                        idempotency_key="hold-next-month", now=now)
    services.refill_entitlements(membership=membership, cycle_key="inv_cycle2", actor=services.Actor.processor(),
                                 now=now + timedelta(days=30))
    assert state(membership, peel) == (2, 1)          # last month's unit, held; this month's, free
    # as the desk holds it (member and practice loaded): on PostgreSQL the one-call walk-in takes it
    desk_view = Membership.objects.select_related("member__practice", "tier").get(pk=membership.pk)
    services.redeem_entitlement(membership=desk_view, service=peel, quantity=1, actor=SYSTEM,
                                idempotency_key="walk-in", now=now + timedelta(days=31))
    assert state(membership, peel) == (1, 1)
    services.release_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=33), reason="No-show")
    assert state(membership, peel) == (0, 0)


def test_the_booked_treatment_done_after_a_walk_in_spends_the_held_unit(peel_member):
    membership, peel = peel_member
    now = timezone.now()
    hold = services.reserve_entitlement(membership=membership, service=peel, quantity=1, actor=SYSTEM,
                                        idempotency_key="hold-next-month", now=now)
    services.refill_entitlements(membership=membership, cycle_key="inv_cycle2", actor=services.Actor.processor(),
                                 now=now + timedelta(days=30))
    services.redeem_entitlement(membership=membership, service=peel, quantity=1, actor=SYSTEM,
                                idempotency_key="walk-in", now=now + timedelta(days=31))
    services.commit_reservation(reservation=hold, actor=SYSTEM, now=now + timedelta(days=33))
    assert state(membership, peel) == (0, 0)
