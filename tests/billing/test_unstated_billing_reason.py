"""Without a `billing_reason` (localstripe and other Stripe-compatible servers, Stripe before 2018)
whether an invoice opens a cycle is decided from its period: two renewals delivered in reverse order
are both refilled, as in order (the older one is a late cycle, slotted in at its own place)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from billing import services as billing
from billing.facts import ChargeSucceeded
from memberships import services
from memberships.models import EntryKind, LedgerEntry, Membership
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 18, 0, tzinfo=dt_timezone.utc)
PERIOD = timedelta(days=30)


def enrolled(tier, n):
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=T0 - timedelta(minutes=1),
                                  processor_subscription_id=f"sub_unstated_{n}")


def paid(membership, k):
    start = T0 + k * PERIOD
    return ChargeSucceeded(
        processor="stripe", invoice_ref=f"in_unstated_{membership.pk}_{k}",
        subscription_ref=membership.processor_subscription_id, customer_ref="cus_x",
        membership_ref=f"ms_{membership.pk}", amount_cents=19900, currency="usd", attempt_count=1,
        period_start=start, period_end=start + PERIOD, created=int(start.timestamp()) - 3600,
        event_created=int(start.timestamp()) + 5, billing_reason="",          # the server did not say
        amount_paid_cents=19900, paid_at=start)


def grants(membership):
    return sorted(set(LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT)
                      .values_list("cycle_key", flat=True)))


def test_renewals_without_a_billing_reason_refill_the_same_in_any_order(glow):
    tier, _, _ = glow
    in_order, reverse = enrolled(tier, 1), enrolled(tier, 2)
    for k in (0, 1, 2):
        billing.record_charge_succeeded(charge=paid(in_order, k), now=T0 + k * PERIOD)
    for k in (0, 2, 1):                                   # invoice 3's webhook outran invoice 2's
        billing.record_charge_succeeded(charge=paid(reverse, k), now=T0 + 2 * PERIOD)

    a, b = Membership.objects.get(pk=in_order.pk), Membership.objects.get(pk=reverse.pk)
    assert len(grants(a)) == 3 and a.cycle_number == 3
    assert (b.cycle_number, len(grants(b))) == (a.cycle_number, len(grants(a))), \
        "the late renewal of a paid period was never refilled"
