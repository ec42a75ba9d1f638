"""How many reads reconciliation asks of Square for a practice's entitled members: their latest
invoices come in pages of the location's invoices (SearchInvoices, newest first, 200 a page), not one
GetInvoice per member — at 1,000 members that was 1,000 calls against Square's rate limit. What the
manager reads is the same: an unpaid invoice still shows as 'unpaid at the processor'. Runs on SQLite
and PostgreSQL."""

from datetime import datetime, timezone as dt_timezone

import pytest

from billing.reconciliation.snapshots import ledger_rows
from integrations.processors import square_read
from tests.integrations.test_square_reconciliation import NOW, on_square, practice  # noqa: F401  (fixture)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_the_latest_invoices_of_many_members_are_read_in_pages_not_one_by_one(practice, glow, square,
                                                                                square_fake):
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    members = [on_square(square, fake, tier) for _ in range(12)]
    fake.now = datetime(2026, 2, 20, 9, 0, tzinfo=dt_timezone.utc)
    unpaid = members[3]
    for m in members:                                      # a second cycle: older invoices to page past
        fake.bill(m.processor_subscription_id, fail_code="CARD_DECLINED" if m is unpaid else None)
    fake.outbox.clear()

    gets, searches = fake.calls("GET", "/v2/invoices/"), fake.calls("POST", "/v2/invoices/search")
    rows = square_read.processor_source(practice=practice, ledger=ledger_rows(practice_id=practice.pk))
    assert fake.calls("GET", "/v2/invoices/") - gets == 0                     # none one by one
    assert fake.calls("POST", "/v2/invoices/search") - searches == 1          # 24 invoices: one page
    status = {row.subscription_id: row.latest_invoice_status for row in rows}
    assert status[unpaid.processor_subscription_id] == "open"
    assert {status[m.processor_subscription_id] for m in members if m is not unpaid} == {"paid"}


def test_a_few_old_latest_invoices_are_read_one_by_one_after_the_pages(practice, glow, square, square_fake):
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    members = [on_square(square, fake, tier) for _ in range(4)]
    old = members[0]                          # its latest invoice is the oldest of the location
    fake.now = datetime(2026, 2, 20, 9, 0, tzinfo=dt_timezone.utc)
    for m in members[1:]:
        fake.bill(m.processor_subscription_id)
    fake.outbox.clear()

    statuses = square_read.latest_invoice_statuses(
        square, {fake.subscriptions[m.processor_subscription_id]["invoice_ids"][0] for m in members}, page_size=2)
    assert set(statuses.values()) == {"paid"} and len(statuses) == 4
    assert fake.calls("POST", "/v2/invoices/search") <= 2                      # then at most a GET or two
