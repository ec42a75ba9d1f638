"""An invoice the practice voids at Stripe (`invoice.voided`) or marks uncollectible
(`invoice.marked_uncollectible`) after its renewal failed: the dunning case stops chasing the member —
forgiven or written off, never "recovered" — the chart flag comes off, messages not yet sent are not
sent, nothing is refilled, and the membership follows Stripe's own subscription event back to active.
Every event is Stripe's signed webhook through the inbox (recorded current-shape payloads, their shape
checked against the stripe SDK's own declarations)."""

import json
from datetime import timedelta

import pytest
import stripe
from django.urls import reverse

from billing.metrics.payments import failed_vs_recovered
from billing.models import DunningCase, DunningCaseStatus, DunningMessage, Invoice, InvoiceStatus, MessageStatus
from integrations import inbox, outbox
from integrations.models import InboundEvent, InboundStatus
from memberships import selectors
from memberships.models import EntitlementBalance, EntryKind, EventKind, LedgerEntry, MembershipStatus
from tests.support.stripe_events import FIXTURES, load_event, post_event, serve_stripe_reads

from .conftest import T0, emails_to, sms_to, walk

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
INVOICE = "in_1SXfixtureRenew01"
FAILED = "invoice_payment_failed_renewal.json"
VOIDED = "invoice_voided_renewal.json"
UNCOLLECTIBLE = "invoice_marked_uncollectible_renewal.json"
SUB_ACTIVE = "customer_subscription_updated_active.json"     # past_due → active, latest invoice the voided one
VOIDED_WORDS = "Invoice voided at Stripe on Dec 26, 2025 — no payment expected"


@pytest.fixture
def reads(settings, httpserver):
    """The failed invoice's decline, read from Stripe (recorded: insufficient funds, soft)."""
    return serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_insufficient_funds.json")


@pytest.fixture
def on_stripe(membership):
    membership.processor_subscription_id = "sub_1SXfixtureGlow0001"
    membership.save(update_fields=["processor_subscription_id"])
    return membership


def post(client, name, membership, now):
    """Stripe posts the signed event; the inbox worker processes it at `now`."""
    assert post_event(client, load_event(name, membership=membership)).status_code == 200
    return inbox.process_due(now=now)


def balances(membership):
    return dict(EntitlementBalance.objects.filter(membership=membership).values_list("service__code", "balance"))


def status_of(membership):
    return membership.__class__.objects.get(pk=membership.pk).status


@pytest.mark.parametrize("name", [VOIDED, UNCOLLECTIBLE])
def test_the_fixtures_are_stripes_invoice_events_as_the_sdk_declares_them(name):
    """Every field of the recorded invoice is one the stripe SDK declares on `Invoice` (and on its
    status transitions); the event type and the invoice status are among the SDK's own values."""
    event = json.loads((FIXTURES / name).read_text())
    assert event["type"] in stripe.Event.__annotations__["type"].__args__
    invoice = event["data"]["object"]
    declared = set(stripe.Invoice.__annotations__) | {"id", "object"}
    assert set(invoice) - declared == set()
    assert set(invoice["status_transitions"]) == set(stripe.Invoice.StatusTransitions.__annotations__)
    assert invoice["status"] in stripe.Invoice.__annotations__["status"].__args__[0].__args__
    parsed = stripe.Event.construct_from(event, "sk_test")
    assert parsed.data.object.object == "invoice" and parsed.data.object.status == invoice["status"]


def test_a_voided_invoice_ends_the_follow_up_forgiven_and_stripe_brings_the_membership_back(
        client, reads, on_stripe):
    membership, member = on_stripe, on_stripe.member
    balance_before = balances(membership)
    assert post(client, FAILED, membership, T0) == {"processed": 1}
    walk(T0, T0 + timedelta(hours=1))                     # day 0: the card-update SMS and email went out
    sent_before = len(sms_to(member)) + len(emails_to(member))
    assert sent_before == 2 and status_of(membership) == MembershipStatus.PAST_DUE

    assert post(client, VOIDED, membership, T0 + DAY) == {"processed": 1}
    case = DunningCase.objects.get(invoice_ref=INVOICE)
    assert case.status == DunningCaseStatus.FORGIVEN and case.close_reason == VOIDED_WORDS
    assert not case.steps.filter(status="pending").exists()
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=INVOICE).status == InvoiceStatus.VOID
    timeline = list(membership.events.filter(kind=EventKind.DUNNING_CLOSED).values_list("summary", flat=True))
    assert timeline == [VOIDED_WORDS]
    # Stripe's own event says whether the subscription is in good standing: until it comes, past due.
    assert status_of(membership) == MembershipStatus.PAST_DUE

    assert post(client, SUB_ACTIVE, membership, T0 + DAY) == {"processed": 1}
    assert status_of(membership) == MembershipStatus.ACTIVE
    back = membership.events.get(kind=EventKind.RECOVERED)
    assert back.summary == "No payment owed any more; membership active"

    walk(T0 + DAY, T0 + 14 * DAY)                         # the rest of the schedule: nothing more is sent
    assert len(sms_to(member)) + len(emails_to(member)) == sent_before
    # Nothing refilled for the month nobody paid, and the dashboard counts it neither recovered nor open.
    assert not LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT, cycle_key=INVOICE).exists()
    assert balances(membership) == balance_before
    figures = failed_vs_recovered(practice_id=member.practice_id, now=T0 + 14 * DAY)
    assert (figures.failed_count, figures.recovered_count, figures.open_count) == (1, 0, 0)
    assert sum(figures.recovered_cents) == 0


def test_a_message_queued_before_the_void_is_not_sent(client, reads, on_stripe):
    """The day-0 messages are queued in the outbox, then the invoice is voided before they leave."""
    membership, member = on_stripe, on_stripe.member
    post(client, FAILED, membership, T0)
    from billing import dunning

    dunning.run_dunning(now=T0)                           # queued, not yet delivered
    assert DunningMessage.objects.filter(status=MessageStatus.PENDING).count() == 2
    post(client, VOIDED, membership, T0 + timedelta(minutes=5))
    outbox.dispatch_due(now=T0 + timedelta(minutes=6))

    assert sms_to(member) == [] and emails_to(member) == []
    assert set(DunningMessage.objects.values_list("status", flat=True)) == {MessageStatus.SKIPPED}


def test_marked_uncollectible_is_written_off_and_a_late_payment_still_counts(client, reads, on_stripe):
    membership, member = on_stripe, on_stripe.member
    post(client, FAILED, membership, T0)
    post(client, UNCOLLECTIBLE, membership, T0 + DAY)

    case = DunningCase.objects.get(invoice_ref=INVOICE)
    assert case.status == DunningCaseStatus.WRITTEN_OFF
    assert case.close_reason == ("Invoice written off at Stripe on Dec 26, 2025 (marked uncollectible) "
                                 "— no payment expected")
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=INVOICE).status == InvoiceStatus.UNCOLLECTIBLE

    # The member pays the written-off invoice after all (Stripe allows it): a real recovery.
    post(client, "invoice_paid_renewal_recovered.json", membership, T0 + 2 * DAY)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert status_of(membership) == MembershipStatus.ACTIVE
    assert LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT, cycle_key=INVOICE).exists()
    figures = failed_vs_recovered(practice_id=member.practice_id, now=T0 + 3 * DAY)
    assert (figures.failed_count, figures.recovered_count, figures.open_count) == (1, 1, 0)


@pytest.mark.parametrize("order", [
    (VOIDED, FAILED, SUB_ACTIVE),          # the void before the failure it forgives
    (FAILED, SUB_ACTIVE, VOIDED),          # Stripe's "active" before the void it follows
    (SUB_ACTIVE, VOIDED, FAILED),
    (FAILED, VOIDED, VOIDED, SUB_ACTIVE),  # the void twice
])
def test_any_order_and_repetition_ends_the_same(client, reads, on_stripe, order):
    membership, member = on_stripe, on_stripe.member
    for n, name in enumerate(order):
        event = load_event(name, membership=membership)
        assert post_event(client, event).status_code == 200
        inbox.process_due(now=T0 + n * timedelta(minutes=1))

    assert status_of(membership) == MembershipStatus.ACTIVE
    assert Invoice.objects.get(processor_invoice_id=INVOICE).status == InvoiceStatus.VOID
    assert not DunningCase.objects.filter(status=DunningCaseStatus.OPEN).exists()
    assert list(selectors.open_chart_flags(member=member)) == []
    assert not InboundEvent.objects.exclude(status=InboundStatus.PROCESSED).exists()
    assert membership.events.filter(summary=VOIDED_WORDS).count() == 1      # a replay writes nothing


def test_a_void_of_an_invoice_that_never_failed_changes_nothing_but_is_recorded(client, reads, on_stripe):
    membership, member = on_stripe, on_stripe.member
    assert post(client, VOIDED, membership, T0) == {"processed": 1}

    assert status_of(membership) == MembershipStatus.ACTIVE
    assert not DunningCase.objects.exists() and list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=INVOICE).status == InvoiceStatus.VOID
    assert list(membership.events.filter(kind=EventKind.NOTE).values_list("summary", flat=True)) == [VOIDED_WORDS]
    # A failure heard of afterwards chases nothing: the invoice is void.
    post(client, FAILED, membership, T0 + DAY)
    assert status_of(membership) == MembershipStatus.ACTIVE and not DunningCase.objects.exists()


def test_the_chart_timeline_says_it_in_plain_words(client, reads, on_stripe, front_desk):
    post(client, FAILED, on_stripe, T0)
    post(client, VOIDED, on_stripe, T0 + DAY)
    client.force_login(front_desk)
    page = client.get(reverse("memberships:chart", args=[on_stripe.member_id])).content.decode()
    assert VOIDED_WORDS in page


def test_the_dunning_case_page_says_the_invoice_was_voided(client, reads, on_stripe, admin_client):
    post(client, FAILED, on_stripe, T0)
    post(client, VOIDED, on_stripe, T0 + DAY)
    case = DunningCase.objects.get(invoice_ref=INVOICE)
    page = admin_client.get(reverse("admin:billing_dunningcase_change", args=[case.pk])).content.decode()
    assert "Forgiven (voided at the processor)" in page and VOIDED_WORDS in page
    listing = admin_client.get(reverse("admin:billing_dunningcase_changelist")).content.decode()
    assert "Forgiven (voided at the processor)" in listing


def test_the_dashboard_no_longer_shows_the_voided_invoice_as_a_failed_payment_open(client, reads, on_stripe,
                                                                                     manager):
    import re

    def open_payments():
        client.force_login(manager)
        page = client.get(reverse("manager:dashboard")).content.decode()
        return re.search(r'Failed payments open</div><div class="value">(\d+)<', page).group(1)

    post(client, FAILED, on_stripe, T0)
    assert open_payments() == "1"
    post(client, VOIDED, on_stripe, T0 + DAY)
    assert open_payments() == "0"


def test_a_retry_on_its_way_when_the_invoice_is_voided_charges_nothing(client, reads, on_stripe, fake_processor):
    """The day-3 retry was asked for (its delivery waits in the outbox); the practice voids the invoice
    before it leaves: no charge, no dead letter, and the timeline says why, not "declined"."""
    from billing import dunning
    from billing.models import AttemptStatus, DunningAttempt
    from integrations.models import Delivery, DeliveryStatus

    post(client, FAILED, on_stripe, T0)
    walk(T0, T0 + timedelta(hours=1))
    day3 = T0 + 3 * DAY + timedelta(hours=1)
    dunning.run_dunning(now=day3)                                  # the retry is asked for, not yet sent
    assert DunningAttempt.objects.get().status == AttemptStatus.REQUESTED
    post(client, VOIDED, on_stripe, day3 + timedelta(minutes=1))
    outbox.dispatch_due(now=day3 + timedelta(minutes=2))

    assert fake_processor.charges == []
    attempt = DunningAttempt.objects.get()
    assert (attempt.status, attempt.decline_code) == (AttemptStatus.FAILED, "no_payment_expected")
    assert not Delivery.objects.filter(destination="payment_retry").exclude(status=DeliveryStatus.DELIVERED).exists()
    assert on_stripe.events.filter(summary="Payment retry 1 not made: no payment expected any more").exists()


def test_a_written_off_invoice_paid_after_stripe_made_the_subscription_active_counts_as_recovered(
        client, reads, on_stripe):
    """Marked uncollectible, Stripe's subscription active again (the membership with it), and then the
    member pays it after all: the dashboard counts the money recovered, as the case says."""
    membership, member = on_stripe, on_stripe.member
    post(client, FAILED, membership, T0)
    post(client, UNCOLLECTIBLE, membership, T0 + DAY)
    post(client, SUB_ACTIVE, membership, T0 + DAY)
    assert status_of(membership) == MembershipStatus.ACTIVE

    post(client, "invoice_paid_renewal_recovered.json", membership, T0 + 2 * DAY)
    assert DunningCase.objects.get(invoice_ref=INVOICE).status == DunningCaseStatus.RECOVERED
    figures = failed_vs_recovered(practice_id=member.practice_id, now=T0 + 3 * DAY)
    assert (figures.failed_count, figures.recovered_count, figures.open_count) == (1, 1, 0)
    assert sum(figures.recovered_cents) == sum(figures.failed_cents) > 0
