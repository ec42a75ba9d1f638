"""Dunning against a real peer: localstripe and the official SDK. A failing card opens a case; our
retry fails there; the member puts a new card on file and comes back from the card page (nothing
charged); Stripe reports the new default card; our retry pays the invoice; the case is recovered,
the flag cleared and the cycle refilled exactly once.

localstripe gaps, said here rather than hidden: it has no Billing Portal and no Checkout (the card
link answers "try again later" instead of redirecting, checked below), no invoice payments
(`/v1/invoice_payments`, where the current API keeps an invoice's PaymentIntent) and no decline codes
beyond card_declined (hard declines, and the current-shape read, are covered against recorded Stripe
bodies in tests/integrations/test_stripe_decline_read.py and tests/billing), and it emits no
invoice.payment_failed for a synchronous renewal decline (the test posts one built around the
invoice re-read from it, as the processor path's own end-to-end test does)."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing import dunning
from billing.dunning.quiet import member_zone
from billing.dunning.links import card_link_token, card_return_token
from billing.models import AttemptStatus, DunningAttempt, DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations import outbox
from integrations.messaging import sms
from memberships import selectors, services
from memberships.models import EventKind, MembershipStatus
from tests.factories import MemberFactory
from tests.support.clock import next_daytime

from .test_stripe_end_to_end import balances, card_on_file, work, world  # noqa: F401  (fixture)

pytestmark = [pytest.mark.localstripe, pytest.mark.django_db(transaction=True)]


def run_at(now):
    """The scheduled dunning run and the outbox, at a moved clock."""
    for _ in range(10):
        done = dunning.run_dunning(now=now)
        sent = outbox.dispatch_due(now=now)
        if not done and not sent:
            return


def test_failing_card_retry_card_update_recovered(world, client, settings):  # noqa: F811
    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    stripe, hooks, tier = world["client"], world["hooks"], world["tier"]
    member = MemberFactory(practice=tier.practice)
    customer = stripe.v1.customers.create({"metadata": {"member_ref": f"mb_{member.pk}"}})
    card_on_file(stripe, customer.id)
    member.processor_customer_id = customer.id
    member.save(update_fields=["processor_customer_id"])
    m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="enroll",
                               now=timezone.now())
    work()
    hooks.deliver_new()
    work()
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1

    # The card starts failing; the renewal invoice stays open.
    card_on_file(stripe, customer.id, "pm_card_chargeCustomerFail")
    renewal = stripe.v1.invoices.create({"customer": customer.id, "subscription": m.processor_subscription_id})
    assert stripe.v1.invoices.pay(renewal.id).status == "open"
    # The event names the charge and the PaymentIntent by id only (as webhooks do, unexpanded): the
    # decline is read from localstripe's PaymentIntent and Charge through the SDK.
    failed_invoice = json.loads(str(stripe.v1.invoices.retrieve(renewal.id)))
    failed_invoice["charge"] = failed_invoice["charge"]["id"]
    assert isinstance(failed_invoice["payment_intent"], str)
    hooks.deliver_object("invoice.payment_failed", failed_invoice, event_id=f"evt_failed_{renewal.id}")
    hooks.deliver_new()
    work()
    case = DunningCase.objects.get(invoice_ref=renewal.id)
    assert case.status == DunningCaseStatus.OPEN and case.amount_cents == 19900 and not case.hard
    assert case.decline_code == "card_declined"
    assert [f.text for f in selectors.open_chart_flags(member=member)] == [
        "Card declined — update card before treatment"]
    # The scheduled runs are moved to 10:00 the member's time, at or after the opening: quiet hours
    # (no SMS 21:00–08:00) would hold the messages expected at the hour the suite happens to run.
    # localstripe keeps the real clock, so the test's own clock is not moved.
    t0 = next_daytime(case.opened_at, zone=str(member_zone(member)))
    run_at(t0)
    assert len(sms.outbox) == 1 and len(mail.outbox) == 1

    # Day 3: our retry goes to the processor and is declined again.
    run_at(t0 + timedelta(days=3))
    attempt = DunningAttempt.objects.get(case=case)
    assert attempt.status == AttemptStatus.FAILED and attempt.decline_code == "card_declined"
    assert stripe.v1.invoices.retrieve(renewal.id).status == "open"
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN
    assert len(sms.outbox) == 2  # the step-1 reminder, after its retry was declined

    # The member opens the link: localstripe has no Billing Portal, so the page asks to try later.
    token = card_link_token(case.pk)
    response = client.get(f"/billing/card/{token}/")
    assert response.status_code == 503 and b"try again" in response.content
    # The member puts a new card on file (what the portal does) and comes back: thanked, no charge.
    old_card = stripe.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method
    new_card = card_on_file(stripe, customer.id)
    assert client.get(f"/billing/card/{card_return_token(case.pk)}/done/").status_code == 200
    run_at(t0 + timedelta(days=3, minutes=30))
    assert DunningAttempt.objects.filter(case=case).count() == 1
    # Stripe reports the new default card (customer.updated, built around the customer re-read from
    # localstripe, which sends no previous_attributes itself): retry now.
    assert hooks.post({"id": f"evt_card_{new_card}", "object": "event", "type": "customer.updated",
                "api_version": "2017-08-15", "created": int(timezone.now().timestamp()), "livemode": False,
                "data": {"object": json.loads(str(stripe.v1.customers.retrieve(customer.id))),
                         "previous_attributes": {"invoice_settings": {"default_payment_method": old_card}}}}) == 200
    work()
    run_at(t0 + timedelta(days=3, hours=1))

    case.refresh_from_db()
    m.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert [a.status for a in DunningAttempt.objects.filter(case=case)] == [AttemptStatus.FAILED, AttemptStatus.PAID]
    assert stripe.v1.invoices.retrieve(renewal.id).status == "paid"
    assert Invoice.objects.get(processor_invoice_id=renewal.id).status == InvoiceStatus.PAID
    assert list(selectors.open_chart_flags(member=member)) == []
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 2
    assert balances(m) == {"hydrafacial": 2, "product-credit": 5000}

    # The processor's own events for that payment arrive afterwards, twice: refilled once only.
    hooks.deliver_new()
    hooks.deliver_new(again=True)
    work()
    run_at(t0 + timedelta(days=14))
    m.refresh_from_db()
    assert m.cycle_number == 2 and balances(m) == {"hydrafacial": 2, "product-credit": 5000}
    assert m.events.filter(kind=EventKind.REFILLED).count() == 2
    assert len(sms.outbox) == 2 and len(mail.outbox) == 1  # nothing more after the recovery
