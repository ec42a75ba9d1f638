"""Dunning driven by the processor's own signed webhooks (recorded current-shape events, the decline
read from recorded Stripe bodies at the HTTP boundary), with the clock moved as the member would live
it: a stolen card is asked for a new card and never retried; in smart-retry mode the processor retries,
we only message, and its `invoice.paid` closes the case."""

from datetime import timedelta

from billing.dunning.policy import update_dunning_policy
from billing.models import DunningAttempt, DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations import inbox
from integrations.models import Delivery
from memberships import selectors, services
from memberships.models import EventKind, MembershipStatus
from tests.support.stripe_events import load_event, post_event, serve_stripe_reads

from .conftest import T0, emails_to, sms_to, walk

DAY = timedelta(days=1)
INVOICE = "in_1SXfixtureRenew01"
CARD_LINK = "https://ledger.example.com/billing/card/"


def deliver_webhook(client, name, membership, now):
    """Stripe posts the signed event; the inbox worker processes it at the moved clock."""
    assert post_event(client, load_event(name, membership=membership)).status_code == 200
    assert inbox.process_due(now=now) == {"processed": 1}


def test_a_stolen_card_from_a_current_shape_webhook_gets_card_update_messages_only(
        client, settings, httpserver, membership, fake_processor):
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_stolen_card.json")
    member = membership.member
    deliver_webhook(client, "invoice_payment_failed_renewal.json", membership, T0)
    case = DunningCase.objects.get(invoice_ref=INVOICE)
    assert case.hard and case.decline_code == "stolen_card"
    assert membership.__class__.objects.get(pk=membership.pk).status == MembershipStatus.PAST_DUE

    walk(T0, T0 + 14 * DAY)
    # No automatic retry: none planned, none sent to the processor.
    assert DunningAttempt.objects.filter(case=case).count() == 0
    assert not Delivery.objects.filter(destination="payment_retry").exists()
    assert fake_processor.charges == []
    assert not [r for r, _ in httpserver.log if r.path.endswith("/pay")]
    # Only the card-update messages of the policy (both, sms, email, both), each with the link.
    bodies = [m.body for m in sms_to(member)] + [m.body for m in emails_to(member)]
    assert len(bodies) == 6 and all(CARD_LINK in body for body in bodies)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.EXHAUSTED


def test_smart_retry_mode_leaves_retries_to_the_processor_and_closes_on_its_invoice_paid(
        client, settings, httpserver, membership, dunning_practice, fake_processor):
    update_dunning_policy(practice=dunning_practice, changes={"use_processor_retries": True},
                          actor=services.Actor.system(), now=T0 - DAY)
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_insufficient_funds.json")
    member = membership.member
    deliver_webhook(client, "invoice_payment_failed_renewal.json", membership, T0)
    case = DunningCase.objects.get(invoice_ref=INVOICE)
    assert not case.hard and case.policy.use_processor_retries

    walk(T0, T0 + 3 * DAY + timedelta(hours=1))          # day 0 SMS + email, day 3 SMS
    assert len(sms_to(member)) == 2 and len(emails_to(member)) == 1
    # The processor's smart retry on day 2 failed too: same case, still ours to message.
    deliver_webhook(client, "invoice_payment_failed_renewal_attempt2.json", membership, T0 + 3 * DAY + timedelta(hours=2))
    case.refresh_from_db()
    assert case.failure_count == 2 and DunningCase.objects.count() == 1

    # Day 4: the processor's own retry collects the invoice and tells us.
    deliver_webhook(client, "invoice_paid_renewal_recovered.json", membership, T0 + 4 * DAY)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and case.close_reason == "invoice paid (processor)"
    assert Invoice.objects.get(processor_invoice_id=INVOICE).status == InvoiceStatus.PAID
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 2
    assert list(selectors.open_chart_flags(member=member)) == []

    walk(T0 + 4 * DAY, T0 + 14 * DAY)
    # We never retried: no attempts, no retry deliveries, nothing charged by us.
    assert DunningAttempt.objects.count() == 0
    assert not Delivery.objects.filter(destination="payment_retry").exists()
    assert fake_processor.charges == []
    assert len(sms_to(member)) == 2 and len(emails_to(member)) == 1   # nothing after the recovery
    assert membership.events.filter(kind=EventKind.DUNNING_CLOSED).count() == 1
