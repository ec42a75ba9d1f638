"""A Square invoice the practice cancels after its scheduled charge failed (`invoice.canceled`, status
CANCELED): nothing is chased any more. The dunning case ends forgiven — not recovered, nothing
refilled — the chart flag comes off, no more card-update messages leave, and the membership is active
again: Square's subscription has no past-due state (it stayed ACTIVE), so with nothing failed left
owed the member is in good standing. The fake Square sends the webhooks, each checked against the
SDK's models (`InvoiceCanceledEvent`). Runs on SQLite and PostgreSQL."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from square.types.invoice_canceled_event import InvoiceCanceledEvent

from billing.metrics.payments import failed_vs_recovered
from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations.messaging import sms
from integrations.models import InboundEvent, InboundStatus
from memberships import selectors
from memberships.models import EntryKind, EventKind, LedgerEntry, MembershipStatus
from tests.integrations.test_square_dunning import failed_charge, square_member  # noqa: F401  (fixture)
from tests.integrations.test_square_end_to_end import balances, deliver, work
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)
from tests.support.square_models import check

pytestmark = pytest.mark.django_db

CANCELLED_WORDS = "Invoice cancelled at Square on Feb 6, 2026 — no payment expected"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "square" / "invoice.canceled.json"


def status_of(membership):
    return membership.__class__.objects.get(pk=membership.pk).status


def texts_and_emails(member):
    from django.core import mail

    return len([m for m in sms.outbox if m.to == member.phone]) + len([m for m in mail.outbox if member.email in m.to])


def test_the_fixture_is_squares_invoice_canceled_event():
    event = json.loads(FIXTURE.read_text())
    check(InvoiceCanceledEvent, event)
    assert event["data"]["object"]["invoice"]["status"] == "CANCELED"


def test_an_invoice_cancelled_at_square_ends_the_follow_up_forgiven(square_member, square_fake, client):
    member, membership, sub_id = square_member
    before = balances(membership)
    case = failed_charge(square_fake, client, sub_id)                   # Feb 5: the charge fails
    assert status_of(membership) == MembershipStatus.PAST_DUE
    assert len(selectors.open_chart_flags(member=member)) == 1
    messages = texts_and_emails(member)

    square_fake.now += timedelta(days=1)                                 # Feb 6: the practice cancels it
    square_fake.cancel_invoice(case.invoice_ref)
    deliver(square_fake, client)
    work(square_fake.now)

    case.refresh_from_db()
    assert case.status == DunningCaseStatus.FORGIVEN and case.close_reason == CANCELLED_WORDS
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=case.invoice_ref).status == InvoiceStatus.VOID
    assert status_of(membership) == MembershipStatus.ACTIVE
    assert membership.events.get(kind=EventKind.RECOVERED).summary == "No payment owed any more; membership active"
    assert balances(membership) == before
    assert not LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT,
                                          cycle_key=case.invoice_ref).exists()

    for day in range(1, 10):                                             # the rest of the schedule
        work(square_fake.now + timedelta(days=day))
    assert texts_and_emails(member) == messages
    figures = failed_vs_recovered(practice_id=member.practice_id, now=square_fake.now + timedelta(days=10))
    assert (figures.failed_count, figures.recovered_count, figures.open_count) == (1, 0, 0)


@pytest.mark.parametrize("order", ["cancellation first", "cancellation twice"])
def test_order_and_repetition_end_the_same(square_member, square_fake, client, order):
    member, membership, sub_id = square_member
    square_fake.now += timedelta(days=31)
    invoice = square_fake.bill(sub_id, fail_code="INSUFFICIENT_FUNDS")
    square_fake.now += timedelta(days=1)
    square_fake.cancel_invoice(invoice)
    failure, cancellation = square_fake.outbox[-2:]
    square_fake.outbox[-2:] = [cancellation, failure] if order == "cancellation first" else \
        [failure, cancellation, cancellation]
    deliver(square_fake, client)
    work(square_fake.now)

    assert status_of(membership) == MembershipStatus.ACTIVE
    assert not DunningCase.objects.filter(status=DunningCaseStatus.OPEN).exists()
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=invoice).status == InvoiceStatus.VOID
    assert not InboundEvent.objects.exclude(status=InboundStatus.PROCESSED).exists()
    assert membership.events.filter(summary__startswith="Invoice cancelled at Square").count() == 1


def test_a_paid_invoice_cannot_be_cancelled_at_square(square_member, square_fake):
    member, membership, sub_id = square_member
    square_fake.now += timedelta(days=31)
    invoice = square_fake.bill(sub_id)
    with pytest.raises(Exception, match="PAID state cannot be canceled"):
        square_fake.cancel_invoice(invoice)
