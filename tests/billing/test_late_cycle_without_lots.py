"""A renewal heard of after a newer one never moves the current period back, even for a tier that
grants nothing per cycle (no lots to tell the cycles apart): lateness comes from the periods."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from billing import services as billing
from billing.facts import ChargeSucceeded
from memberships import services
from memberships.models import Membership
from tests.factories import MemberFactory, TierFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 18, 0, tzinfo=dt_timezone.utc)
PERIOD = timedelta(days=30)


def paid(membership, k):
    start = T0 + k * PERIOD
    return ChargeSucceeded(
        processor="stripe", invoice_ref=f"in_nolot_{membership.pk}_{k}",
        subscription_ref=membership.processor_subscription_id, customer_ref="cus_x",
        membership_ref=f"ms_{membership.pk}", amount_cents=4900, currency="usd", attempt_count=1,
        period_start=start, period_end=start + PERIOD, created=int(start.timestamp()) - 3600,
        event_created=int(start.timestamp()) + 5,
        billing_reason="subscription_create" if k == 0 else "subscription_cycle",
        amount_paid_cents=4900, paid_at=start)


def test_a_late_renewal_never_moves_the_current_period_back(practice):
    tier = TierFactory(practice=practice, code="vip", name="VIP pricing", price_cents=4900)   # no benefits
    states = []
    for n, order in enumerate(((0, 1, 2), (0, 2, 1))):
        member = MemberFactory(practice=practice)
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                   idempotency_key=f"enroll:{member.pk}", now=T0 - timedelta(minutes=1),
                                   processor_subscription_id=f"sub_nolot_{n}")
        for k in order:
            billing.record_charge_succeeded(charge=paid(m, k), now=T0 + 2 * PERIOD + timedelta(hours=1))
        m = Membership.objects.get(pk=m.pk)
        states.append((m.status, m.cycle_number, m.current_period_start, m.current_period_end))
    in_order, late = states
    assert in_order[2] == T0 + 2 * PERIOD
    assert late == in_order, f"in order {in_order}, with invoice 2 late {late}"
