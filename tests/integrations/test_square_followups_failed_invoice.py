"""A Square invoice Square itself cancels for suspicious activity after its scheduled charge failed:
status FAILED ("Square canceled the invoice due to suspicious activity", InvoiceStatus), reported by
`invoice.updated` alone — no `invoice.canceled`, which is the seller's act. Nobody can pay it any more
(its page accepts no payment), so its dunning case ends forgiven as an invoice the practice cancels
does (test_square_forgiven): no more messages chasing it, the chart flag off, the member active again,
nothing refilled. In any order, twice. Runs on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from square.types.invoice_updated_event import InvoiceUpdatedEvent

from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations.models import InboundEvent, InboundStatus
from integrations.processors import square_events
from memberships import selectors
from memberships.models import EntryKind, LedgerEntry, MembershipStatus
from tests.integrations.test_square_dunning import failed_charge, square_member  # noqa: F401  (fixture)
from tests.integrations.test_square_end_to_end import balances, deliver, work
from tests.integrations.test_square_forgiven import status_of, texts_and_emails
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)
from tests.support.square_models import check

pytestmark = pytest.mark.django_db

FAILED_WORDS = "Invoice cancelled by Square (suspicious activity) at Square on Feb 6, 2026 — no payment expected"


def test_an_invoice_square_cancels_for_suspicious_activity_ends_the_follow_up(square_member, square_fake, client):
    member, membership, sub_id = square_member
    before = balances(membership)
    case = failed_charge(square_fake, client, sub_id)                   # Feb 5: the charge fails
    assert status_of(membership) == MembershipStatus.PAST_DUE and case.status == DunningCaseStatus.OPEN
    messages = texts_and_emails(member)

    square_fake.now += timedelta(days=1)                                 # Feb 6: Square cancels it itself
    square_fake.fail_invoice(case.invoice_ref)
    (body, _), = square_fake.outbox
    assert b'"invoice.updated"' in body and b'"FAILED"' in body          # the only event Square sends
    deliver(square_fake, client)
    work(square_fake.now)

    case.refresh_from_db()
    assert case.status == DunningCaseStatus.FORGIVEN and case.close_reason == FAILED_WORDS
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=case.invoice_ref).status == InvoiceStatus.VOID
    assert status_of(membership) == MembershipStatus.ACTIVE
    assert balances(membership) == before
    assert not LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT,
                                          cycle_key=case.invoice_ref).exists()
    for day in range(1, 10):                                             # the rest of the schedule: silence
        work(square_fake.now + timedelta(days=day))
    assert texts_and_emails(member) == messages
    assert not DunningCase.objects.filter(status=DunningCaseStatus.OPEN).exists()


@pytest.mark.parametrize("order", ["update first", "update twice", "update, then the seller cancels too"])
def test_order_and_repetition_end_the_same(square_member, square_fake, client, order):
    member, membership, sub_id = square_member
    square_fake.now += timedelta(days=31)
    invoice = square_fake.bill(sub_id, fail_code="INSUFFICIENT_FUNDS")
    square_fake.now += timedelta(days=1)
    square_fake.fail_invoice(invoice)
    failure, update = square_fake.outbox[-2:]
    if order == "update first":
        square_fake.outbox[-2:] = [update, failure]
    elif order == "update twice":
        square_fake.outbox[-2:] = [failure, update, update]
    else:   # an invoice.canceled of the same invoice as well (a seller's cancellation heard late)
        square_fake.invoices[invoice]["status"] = "UNPAID"
        square_fake.cancel_invoice(invoice)
        square_fake.outbox[-3:] = [failure, update, square_fake.outbox[-1]]
    deliver(square_fake, client)
    work(square_fake.now)

    assert status_of(membership) == MembershipStatus.ACTIVE
    assert not DunningCase.objects.filter(status=DunningCaseStatus.OPEN).exists()
    assert list(selectors.open_chart_flags(member=member)) == []
    assert Invoice.objects.get(processor_invoice_id=invoice).status == InvoiceStatus.VOID
    assert not InboundEvent.objects.exclude(status=InboundStatus.PROCESSED).exists()
    assert membership.events.filter(summary__startswith="Invoice cancelled").count() == 1


def test_other_invoice_updates_change_nothing(square_member, square_fake, client):
    """`invoice.updated` is sent for every change of an invoice: a failed charge's UNPAID invoice, or a
    paid one, says nothing the other events do not; the case stays open."""
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    square_fake.emit("invoice.updated", "invoice", square_fake.invoices[case.invoice_ref])
    deliver(square_fake, client)
    work(square_fake.now)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN and status_of(membership) == MembershipStatus.PAST_DUE
    assert InboundEvent.objects.filter(event_type="invoice.updated", status=InboundStatus.IGNORED).count() == 1


def test_square_subscribes_to_invoice_updated_and_its_event_reads_as_forgiven(square_member, square_fake, client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    square_fake.fail_invoice(case.invoice_ref)
    (body, _), = square_fake.outbox
    import json

    event = json.loads(body)
    check(InvoiceUpdatedEvent, event)
    assert square_events.is_handled("invoice.updated")
    fact = square_events.parse_event(event).fact
    assert type(fact).__name__ == "InvoiceForgiven" and fact.invoice_ref == case.invoice_ref
    assert not fact.standing_reported
