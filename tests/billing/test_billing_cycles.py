"""A paid invoice refills only when it opens a billing cycle (billing.services.opens_cycle), whatever
processor reported it: the normalized fact's `billing_reason`, or — when the processor does not say
— the period its subscription line bills."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from billing import services as billing_services
from billing.facts import ChargeSucceeded
from billing.models import Invoice, InvoiceStatus
from memberships import services
from memberships.models import EntitlementBalance, EventKind
from tests.factories import active_membership

UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def paid(m, ref, at, *, amount=19900, start=None, end=None, reason=""):
    return billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(processor="stripe", invoice_ref=ref, subscription_ref=m.processor_subscription_id,
                               customer_ref="cus_1", membership_ref=f"ms_{m.pk}", amount_cents=amount,
                               currency="usd", attempt_count=1, period_start=start, period_end=end,
                               created=int(at.timestamp()), event_created=int(at.timestamp()),
                               amount_paid_cents=amount, paid_at=at, billing_reason=reason), now=at)


def balances(m):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=m).select_related("service")}


@pytest.fixture
def in_cycle_2(glow):
    """A Glow member in cycle 2 (period T0+30 d … T0+60 d) who spent $10 of the $50 credit."""
    tier, _, credit = glow
    m = active_membership(tier=tier, now=T0)
    m.processor_subscription_id = "sub_y"
    m.save(update_fields=["processor_subscription_id"])
    paid(m, "in_cycle2", T0 + 30 * DAY, start=T0 + 30 * DAY, end=T0 + 60 * DAY, reason="subscription_cycle")
    services.redeem_entitlement(membership=m, service=credit, quantity=1000, actor=services.Actor.system(),
                                idempotency_key="r1", now=T0 + 31 * DAY)
    m.refresh_from_db()
    assert (m.cycle_number, balances(m)) == (2, {"hydrafacial": 2, "product-credit": 4000})
    return m


@pytest.mark.parametrize("reason", ["subscription_update", "manual", "subscription_threshold", ""])
def test_a_second_invoice_within_the_period_changes_no_balance_and_no_period(in_cycle_2, reason):
    """The review's case: a $50 invoice (prorations invoiced at once, a manual invoice…) paid mid-period.
    Before: cycle 2→3, HydraFacial 2→3, the $40 expired and $50 granted, the period overwritten."""
    m = in_cycle_2
    paid(m, "in_extra", T0 + 40 * DAY, amount=5000, start=T0 + 40 * DAY, end=T0 + 60 * DAY, reason=reason)
    m.refresh_from_db()
    assert m.cycle_number == 2
    assert balances(m) == {"hydrafacial": 2, "product-credit": 4000}
    assert (m.current_period_start, m.current_period_end) == (T0 + 30 * DAY, T0 + 60 * DAY)
    invoice = Invoice.objects.get(processor_invoice_id="in_extra")
    assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.PAID, 5000)
    note = m.events.get(kind=EventKind.NOTE)
    assert note.summary.startswith("Invoice in_extra paid; not a new billing cycle (")


@pytest.mark.parametrize("reason", ["subscription_cycle", "subscription_create", ""])
def test_the_next_period_is_a_cycle_and_refills_once(in_cycle_2, reason):
    m = in_cycle_2
    for _ in range(2):                       # a replay (or invoice.payment_succeeded beside invoice.paid)
        paid(m, "in_cycle3", T0 + 60 * DAY, start=T0 + 60 * DAY, end=T0 + 90 * DAY, reason=reason)
    m.refresh_from_db()
    # Glow: two facials carried over (cap 2) + this cycle's; the $40 of credit left expired.
    assert m.cycle_number == 3 and balances(m) == {"hydrafacial": 3, "product-credit": 5000}
    assert m.current_period_end == T0 + 90 * DAY
    assert m.events.filter(kind=EventKind.REFILLED).count() == 3      # the seed, cycle 2, cycle 3
    assert not m.events.filter(kind=EventKind.NOTE).exists()


def test_a_trial_invoice_grants_nothing(glow):
    """A free trial's first invoice (the adapter says `trial`) opens no cycle, even as a
    subscription_create."""
    tier, _, _ = glow
    m = active_membership(tier=tier, now=T0)
    m.processor_subscription_id = "sub_t"
    m.save(update_fields=["processor_subscription_id"])
    billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(processor="stripe", invoice_ref="in_trial", subscription_ref="sub_t",
                               customer_ref="cus_1", membership_ref=f"ms_{m.pk}", amount_cents=0, currency="usd",
                               attempt_count=0, period_start=T0 + 30 * DAY, period_end=T0 + 44 * DAY,
                               created=int(T0.timestamp()), event_created=int(T0.timestamp()),
                               billing_reason="subscription_create", trial=True), now=T0 + 30 * DAY)
    m.refresh_from_db()
    assert m.cycle_number == 1 and balances(m) == {"hydrafacial": 1, "product-credit": 5000}   # the seed only
    assert m.current_period_end is None
