"""Facts are dated and read by the processor's own words, not by when the worker got to them:

- a cycle the processor charged before the staff paused the membership is granted even when its
  webhook is heard after the pause (the member paid for it; it waits out the pause);
- a failed charge is dated when the processor failed it, not when the event was processed;
- an invoice with nothing due (`amount_due` 0, a balance or coupon paid it) is not read as its total."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone as dt_timezone

import pytest

from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from billing.models import Invoice
from integrations.processors import stripe_events
from memberships import services
from memberships.models import EntitlementBalance, EventKind, Membership, MembershipStatus
from tests.factories import MemberFactory, glow_tier

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=dt_timezone.utc)
PERIOD = timedelta(days=30)


def _enrolled(tier, n: int) -> Membership:
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=T0 - timedelta(minutes=5),
                                  processor_subscription_id=f"sub_ptime_{n}")


def _paid(membership: Membership, k: int) -> ChargeSucceeded:
    start = T0 + k * PERIOD
    return ChargeSucceeded(
        processor="stripe", invoice_ref=f"in_ptime_{membership.pk}_{k}",
        subscription_ref=membership.processor_subscription_id, customer_ref="cus_ptime",
        membership_ref=billing.membership_ref_for(membership), amount_cents=19900, currency="usd",
        attempt_count=1, period_start=start, period_end=start + PERIOD, created=int(start.timestamp()),
        event_created=int(start.timestamp()) + 3600,
        billing_reason="subscription_create" if k == 0 else "subscription_cycle",
        amount_paid_cents=19900, paid_at=start + timedelta(hours=1))


def _balances(membership: Membership) -> dict[str, int]:
    return dict(EntitlementBalance.objects.filter(membership=membership).values_list("service__code", "balance"))


def _pause(membership: Membership, *, at: datetime) -> None:
    services.pause_membership(membership=membership, until=date(2026, 6, 1), actor=services.Actor.system(),
                              idempotency_key=f"pause:{membership.pk}", now=at)


def test_a_cycle_charged_before_the_pause_is_granted_whenever_its_webhook_comes(practice):
    tier = glow_tier(practice)[0]
    charged_at = T0 + PERIOD + timedelta(hours=1)
    paused_at = charged_at + timedelta(hours=2)
    heard_first, heard_late = _enrolled(tier, 1), _enrolled(tier, 2)
    for m in (heard_first, heard_late):
        billing.record_charge_succeeded(charge=_paid(m, 0), now=T0 + timedelta(hours=1))
    # In order: the renewal is heard, then the front desk pauses.
    billing.record_charge_succeeded(charge=_paid(heard_first, 1), now=charged_at)
    _pause(heard_first, at=paused_at)
    # The webhook is late: the front desk pauses first, then the renewal charged before it is heard.
    _pause(heard_late, at=paused_at)
    billing.record_charge_succeeded(charge=_paid(heard_late, 1), now=paused_at + timedelta(hours=3))

    first, late = (Membership.objects.get(pk=m.pk) for m in (heard_first, heard_late))
    assert late.status == MembershipStatus.PAUSED
    assert (late.cycle_number, late.current_period_start) == (first.cycle_number, first.current_period_start) == (
        2, T0 + PERIOD)
    assert _balances(late) == _balances(first) == {"hydrafacial": 2, "product-credit": 5000}
    assert late.events.filter(kind=EventKind.REFILLED).count() == 2


def test_a_cycle_that_began_after_the_pause_is_not_granted(practice):
    tier = glow_tier(practice)[0]
    m = _enrolled(tier, 3)
    billing.record_charge_succeeded(charge=_paid(m, 0), now=T0 + timedelta(hours=1))
    _pause(m, at=T0 + timedelta(days=3))
    billing.record_charge_succeeded(charge=_paid(m, 1), now=T0 + PERIOD + timedelta(hours=2))
    m = Membership.objects.get(pk=m.pk)
    assert (m.status, m.cycle_number) == (MembershipStatus.PAUSED, 1)
    assert _balances(m) == {"hydrafacial": 1, "product-credit": 5000}
    assert m.events.filter(kind=EventKind.NOTE, summary__startswith="Charge received while paused").exists()


def test_a_failed_charge_is_dated_when_the_processor_failed_it(practice):
    tier = glow_tier(practice)[0]
    m = _enrolled(tier, 4)
    billing.record_charge_succeeded(charge=_paid(m, 0), now=T0 + timedelta(hours=1))
    start = T0 + PERIOD
    failed_at = start + timedelta(hours=1)
    charge = ChargeFailed(
        processor="stripe", invoice_ref=f"in_ptime_fail_{m.pk}", subscription_ref=m.processor_subscription_id,
        customer_ref="cus_ptime", membership_ref=billing.membership_ref_for(m), amount_cents=19900,
        currency="usd", attempt_count=1, period_start=start, period_end=start + PERIOD,
        created=int(start.timestamp()), event_created=int(failed_at.timestamp()),
        billing_reason="subscription_cycle", failure_code="card_declined", decline_code="insufficient_funds")
    processed_at = failed_at + timedelta(hours=6)      # the worker was down all morning
    billing.record_charge_failed(charge=charge, now=processed_at)
    invoice = Invoice.objects.get(processor_invoice_id=charge.invoice_ref)
    assert invoice.failed_at == failed_at
    assert m.dunning_cases.get().last_failure_at == failed_at


def _stripe_invoice_event(**invoice_fields) -> dict:
    invoice = {"id": "in_ptime_zero", "object": "invoice", "customer": "cus_ptime", "subscription": "sub_ptime_z",
               "currency": "usd", "attempt_count": 1, "created": 1772470800, "billing_reason": "subscription_cycle",
               "lines": {"data": []}, "status": "paid", "amount_paid": 0, **invoice_fields}
    return {"id": "evt_ptime_zero", "type": "invoice.paid", "created": 1772470805, "data": {"object": invoice}}


@pytest.mark.parametrize("fields, expected", [
    ({"amount_due": 0, "total": 19900}, 0),                # a customer balance or coupon covered it
    ({"amount_due": 19900, "total": 19900}, 19900),
    ({"total": 4900}, 4900),                               # an older payload without amount_due
])
def test_what_an_invoice_asks_for_is_its_amount_due_even_when_nothing(fields, expected):
    fact = stripe_events.parse_event(_stripe_invoice_event(**fields))
    assert fact.fact.amount_cents == expected
