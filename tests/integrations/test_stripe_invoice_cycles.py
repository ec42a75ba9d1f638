"""Which paid invoices open a billing cycle. Only a subscription's first invoice and its renewals
(Stripe's `billing_reason` subscription_create / subscription_cycle) refill the balance, run the
rollover and move the period; any other paid invoice on the subscription (prorations invoiced at
once, a manual invoice) is mirrored and written on the timeline, nothing more. Events are recorded
current-shape fixtures (tests/fixtures/stripe)."""

from datetime import datetime, timezone as dt_timezone

import pytest
from django.utils import timezone

from billing.models import Invoice, InvoiceStatus
from integrations.processors.stripe_events import parse_event
from memberships import services
from memberships.models import Event, EventKind, LedgerEntry, MembershipStatus
from tests.support.stripe_events import load_event, post_event

from .test_stripe_webhooks import balances, membership, process_all, stripe_reads  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
CYCLE_2 = (datetime.fromtimestamp(1766592000, UTC), datetime.fromtimestamp(1769184000, UTC))
CYCLE_3 = (datetime.fromtimestamp(1769184000, UTC), datetime.fromtimestamp(1771776000, UTC))


def deliver(client, membership, *names, drop_reason=False):
    for name in names:
        event = load_event(name, membership=membership)
        if drop_reason:             # as localstripe (and Stripe before 2018) send it: no billing_reason
            del event["data"]["object"]["billing_reason"]
        post_event(client, event)
        process_all()


def notes(membership):
    return list(Event.objects.filter(membership=membership, kind=EventKind.NOTE).order_by("id")
                .values_list("summary", flat=True))


def test_prorations_invoiced_mid_period_are_mirrored_not_a_new_cycle(client, membership, glow):
    """A Glow member in cycle 2 with $40 of credit left; a tier change invoiced at once
    (STRIPE_PRORATION_BEHAVIOR=always_invoice) bills $50 mid-period: no refill, no rollover, no new
    period — the $40 stays and the HydraFacial count too."""
    _, _, credit = glow
    deliver(client, membership, "invoice_paid_first.json", "invoice_paid_renewal_recovered.json")
    services.redeem_entitlement(membership=membership, service=credit, quantity=1000,
                                actor=services.Actor.system(), idempotency_key="r1", now=timezone.now())
    membership.refresh_from_db()
    assert membership.cycle_number == 2 and balances(membership) == {"hydrafacial": 2, "product-credit": 4000}
    entries_before = LedgerEntry.objects.filter(membership=membership).count()

    deliver(client, membership, "invoice_paid_subscription_update.json")

    membership.refresh_from_db()
    assert membership.cycle_number == 2
    assert balances(membership) == {"hydrafacial": 2, "product-credit": 4000}
    assert (membership.current_period_start, membership.current_period_end) == CYCLE_2
    assert LedgerEntry.objects.filter(membership=membership).count() == entries_before
    invoice = Invoice.objects.get(processor_invoice_id="in_1SXfixtureUpdate1")
    assert (invoice.status, invoice.amount_paid_cents, invoice.membership_id) == (InvoiceStatus.PAID, 5000,
                                                                                  membership.pk)
    assert notes(membership) == ["Invoice in_1SXfixtureUpdate1 paid; not a new billing cycle (it is for a "
                                 "subscription change (prorations)): nothing refilled"]
    charge = Event.objects.filter(membership=membership, kind=EventKind.CHARGE_SUCCEEDED).latest("id")
    assert charge.payload["billing_reason"] == "subscription_update" and charge.payload["opens_cycle"] is False


def test_a_renewal_takes_its_period_from_the_subscription_line_not_the_prorations(client, membership):
    """A renewal that also carries prorations of a change made during the period lists those lines
    first; the new period is the subscription line's."""
    deliver(client, membership, "invoice_paid_first.json", "invoice_paid_renewal_recovered.json",
            "invoice_paid_renewal_with_prorations.json")
    membership.refresh_from_db()
    assert membership.cycle_number == 3
    assert (membership.current_period_start, membership.current_period_end) == CYCLE_3
    invoice = Invoice.objects.get(processor_invoice_id="in_1SXfixtureRenew02")
    assert (invoice.period_start, invoice.period_end) == CYCLE_3


def test_a_free_trial_grants_nothing_until_its_first_paid_cycle(client, membership):
    deliver(client, membership, "invoice_paid_trial_start.json")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PENDING and membership.cycle_number == 0
    assert balances(membership) == {"hydrafacial": 0, "product-credit": 0}
    assert not LedgerEntry.objects.filter(membership=membership).exists()
    assert Invoice.objects.get(processor_invoice_id="in_1SXfixtureTrial01").status == InvoiceStatus.PAID
    assert notes(membership) == ["Invoice in_1SXfixtureTrial01 paid; not a new billing cycle (a free trial "
                                 "starts: nothing is granted until its first paid cycle): nothing refilled"]

    deliver(client, membership, "invoice_paid_renewal_recovered.json")   # the trial ends: the first paid cycle
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 1
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}


def test_a_first_invoice_paid_by_a_full_coupon_is_a_cycle(client, membership):
    """Nothing charged, but the line bills the tier's price: the practice discounted a paid cycle."""
    event = load_event("invoice_paid_first.json", membership=membership)
    inv = event["data"]["object"]
    inv.update(amount_due=0, amount_paid=0, total=0, total_excluding_tax=0,
               total_discount_amounts=[{"amount": 19900, "discount": "di_1SXfixtureComp01"}])
    inv["lines"]["data"][0]["discount_amounts"] = [{"amount": 19900, "discount": "di_1SXfixtureComp01"}]
    post_event(client, event)
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 1
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}


def test_an_extra_invoice_paid_while_a_renewal_is_unpaid_does_not_recover(client, membership):
    deliver(client, membership, "invoice_paid_first.json", "invoice_payment_failed_renewal.json",
            "invoice_paid_subscription_update.json")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE and membership.cycle_number == 1
    deliver(client, membership, "invoice_paid_renewal_recovered.json")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 2


def test_without_a_billing_reason_the_subscription_lines_period_decides(client, membership):
    """A Stripe-compatible server that sends no billing_reason (localstripe): an invoice opens a cycle
    when its subscription line's period starts at or after the current period's end (or the
    membership has no period yet). Prorations alone, or the current period billed again, do not."""
    deliver(client, membership, "invoice_paid_first.json", drop_reason=True)
    membership.refresh_from_db()
    assert membership.cycle_number == 1
    deliver(client, membership, "invoice_paid_renewal_recovered.json", drop_reason=True)
    membership.refresh_from_db()
    assert membership.cycle_number == 2 and (membership.current_period_start, membership.current_period_end) == CYCLE_2

    deliver(client, membership, "invoice_paid_subscription_update.json", drop_reason=True)
    again = load_event("invoice_paid_renewal_recovered.json", membership=membership)
    del again["data"]["object"]["billing_reason"]
    again["id"], again["data"]["object"]["id"] = "evt_1SXfixtureAgain01", "in_1SXfixtureAgain01"
    post_event(client, again)
    process_all()
    membership.refresh_from_db()
    assert membership.cycle_number == 2 and balances(membership) == {"hydrafacial": 2, "product-credit": 5000}
    assert [n.split("(")[1].split(")")[0] for n in notes(membership)] == [
        "it bills no subscription period", "its period starts before the current period ends"]


def test_the_adapter_reads_the_reason_the_subscription_lines_period_and_a_trial():
    update = parse_event(load_event("invoice_paid_subscription_update.json")).fact
    assert (update.billing_reason, update.period_start, update.period_end, update.trial) == (
        "subscription_update", None, None, False)
    renewal = parse_event(load_event("invoice_paid_renewal_with_prorations.json")).fact
    assert (renewal.billing_reason, (renewal.period_start, renewal.period_end)) == ("subscription_cycle", CYCLE_3)
    assert parse_event(load_event("invoice_paid_trial_start.json")).fact.trial is True
    assert parse_event(load_event("invoice_paid_first.json")).fact.trial is False
