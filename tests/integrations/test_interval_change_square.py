"""A monthly member moved to a yearly tier "now" at a Square practice whose subscriptions the ledger
changes: Square cannot change a price part-way through a paid month, so the monthly subscription ends
when the paid month ends and a yearly one starts that day; its first invoice bills the year and opens
the ledger's year of the new tier — paid and granted together (at a Stripe practice such a change is
refused: tests/staff/test_interval_change.py). Runs on SQLite and PostgreSQL."""

from datetime import date, datetime, time, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from billing.models import Invoice
from memberships.models import MembershipStatus, RolloverRule
from tests.factories import TierBenefitFactory, TierFactory

from .test_square_cards import on_square, square_env, square_fake, square_fake_class, subscribed  # noqa: F401
from .test_square_tier_change import balances, confirm_page, paid_month, settle  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def yearly(on_square, glow):
    tier, facial, credit = glow
    made = TierFactory(practice=tier.practice, code="glow-year", name="Glow yearly",
                       processor_name="Membership — Yearly", price_cents=199000, interval="year", rank=3)
    TierBenefitFactory(tier=made, service=facial, quantity_per_cycle=12, rollover=RolloverRule.NONE)
    TierBenefitFactory(tier=made, service=credit, quantity_per_cycle=60000, rollover=RolloverRule.NONE)
    return made


def test_now_to_a_yearly_tier_bills_the_year_when_the_paid_month_ends_and_grants_it(client, front_desk, paid_month,
                                                                                  yearly, square_fake):
    member, membership, old_id = paid_month
    client.force_login(front_desk)
    url, data, html = confirm_page(client, member, yearly, "now")
    assert "a new one at $1,990.00/year starts that day" in " ".join(html.split())
    assert client.post(url, {**data, "confirm": "1"}).status_code == 302
    settle(timezone.now())
    membership.refresh_from_db()
    new = square_fake.subscriptions[membership.processor_subscription_id]
    through = square_fake.subscriptions[old_id]["charged_through_date"]
    assert new["start_date"] == through and len(square_fake.invoices) == 1       # nothing charged now

    square_fake.now = datetime.combine(date.fromisoformat(through), time(9), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()
    invoice = square_fake.bill(new["id"])
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now + timedelta(minutes=1))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.tier == yearly
    assert membership.cycle_number == 2 and balances(membership) == {"hydrafacial": 12, "product-credit": 60000}
    start = membership.current_period_start
    assert start.date().isoformat() == through
    assert membership.current_period_end.date() == date(start.year + 1, start.month, start.day)
    assert Invoice.objects.get(processor_invoice_id=invoice).amount_paid_cents == 199000      # the year, once
