"""How a payment of a Square invoice reaches the member, however it arrives: a partial payment of the
open invoice (Square sends `invoice.payment_made` for every payment completed on an invoice, the
invoice then PARTIALLY_PAID) leaves the money owed — the case open, nothing refilled — and the payment
of the rest recovers the member and refills once. Runs on SQLite and PostgreSQL."""

import re
from urllib.parse import urlparse

import pytest

from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from memberships.models import LedgerEntry, MembershipStatus
from memberships.models.ledger import EntryKind
from tests.integrations.test_square_dunning import failed_charge, square_member  # noqa: F401  (fixture)
from tests.integrations.test_square_end_to_end import at, balances, deliver, work
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def refills(membership) -> int:
    return LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT).count()


def test_a_partial_payment_of_the_open_invoice_leaves_it_owed_and_the_rest_recovers_once(square_member,
                                                                                         square_fake, client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    before = (refills(membership), balances(membership))
    owed = square_fake.invoices[case.invoice_ref]["payment_requests"][0]["computed_amount_money"]["amount"]

    square_fake.now = at("2026-02-07")
    square_fake.pay_invoice(case.invoice_ref, amount=owed // 3)
    deliver(square_fake, client)
    work(square_fake.now)
    case.refresh_from_db()
    membership.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN                   # money is still owed
    assert membership.status == MembershipStatus.PAST_DUE
    assert (refills(membership), balances(membership)) == before
    assert Invoice.objects.get(processor_invoice_id=case.invoice_ref).status == InvoiceStatus.OPEN

    square_fake.now = at("2026-02-09")
    square_fake.pay_invoice(case.invoice_ref)                      # the rest
    deliver(square_fake, client)
    work(square_fake.now)
    case.refresh_from_db()
    membership.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and membership.status == MembershipStatus.ACTIVE
    invoice = Invoice.objects.get(processor_invoice_id=case.invoice_ref)
    assert (invoice.status, invoice.amount_paid_cents) == (InvoiceStatus.PAID, owed)
    after = refills(membership)
    assert after > before[0]

    square_fake.emit("invoice.payment_made", "invoice", square_fake.invoices[case.invoice_ref])   # again
    deliver(square_fake, client)
    work(square_fake.now)
    assert refills(membership) == after and DunningCase.objects.filter(invoice_ref=case.invoice_ref).count() == 1


def test_after_saving_a_card_the_member_is_told_the_open_amount_is_owed_and_gets_its_page(square_member,
                                                                                            square_fake, client):
    from billing.dunning.links import card_update_link

    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    card_page = client.get(urlparse(card_update_link(case.pk)).path)["Location"]
    done = client.post(urlparse(card_page).path, {"source_token": "cnon:card-nonce-ok"})
    page = done.content.decode()
    assert done.status_code == 200 and "still owed" in page
    [link] = re.findall(r'<a href="([^"]+)">Pay the open amount now</a>', page)
    assert link == square_fake.invoices[case.invoice_ref]["public_url"]


def test_an_old_invoice_paid_after_a_newer_one_grants_its_own_cycle_once_and_keeps_the_member_active(
        square_member, square_fake, client):
    """February's charge fails; March's is paid (a new card); the member then pays February's invoice on
    its page: February's case closes, its cycle is granted once, the membership stays active on March's
    period — and Square telling it again changes nothing."""
    member, membership, sub_id = square_member
    february = failed_charge(square_fake, client, sub_id)
    square_fake.now = at("2026-03-05")
    march = square_fake.bill(sub_id)
    deliver(square_fake, client)
    work(square_fake.now)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    period, granted = (membership.current_period_start, membership.current_period_end), refills(membership)
    february.refresh_from_db()
    assert february.status == DunningCaseStatus.OPEN                # February is still owed

    square_fake.now = at("2026-03-10")
    square_fake.pay_invoice(february.invoice_ref)
    deliver(square_fake, client)
    work(square_fake.now)
    february.refresh_from_db()
    membership.refresh_from_db()
    assert february.status == DunningCaseStatus.RECOVERED
    assert membership.status == MembershipStatus.ACTIVE
    assert (membership.current_period_start, membership.current_period_end) == period
    assert Invoice.objects.get(processor_invoice_id=february.invoice_ref).status == InvoiceStatus.PAID
    assert Invoice.objects.get(processor_invoice_id=march).status == InvoiceStatus.PAID
    once = refills(membership)
    assert once > granted                                          # February's cycle, granted late

    square_fake.emit("invoice.payment_made", "invoice", square_fake.invoices[february.invoice_ref])
    deliver(square_fake, client)
    work(square_fake.now)
    assert refills(membership) == once


def test_an_invoice_paid_at_square_but_not_yet_heard_of_is_not_offered_to_pay_again(square_member, square_fake,
                                                                                     client):
    from billing.dunning.links import card_update_link
    from tests.integrations.test_square_dunning import way_on

    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    square_fake.pay_invoice(case.invoice_ref)           # paid on Square's page; its webhook not heard yet
    square_fake.outbox.clear()
    opened = client.get(urlparse(card_update_link(case.pk)).path)
    assert opened.status_code == 302 and way_on(opened) == ""          # the card page, no 'pay now'
