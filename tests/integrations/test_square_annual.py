"""A yearly tier at Square: its plan variation bills ANNUAL, the member is charged once a year, and the
ledger's period is the year Square bills (Square's invoice does not say how long its cycle is: the
inbox takes it from the tier the ledger sold). Runs on SQLite and PostgreSQL."""

from datetime import date

import pytest

from billing.models import Invoice
from memberships.models import MembershipStatus, RolloverRule
from tests.factories import TierBenefitFactory, TierFactory
from tests.integrations.test_square_end_to_end import at, balances, deliver, enroll, price_of, work
from tests.integrations.test_square_end_to_end import world  # noqa: F401  (fixture)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def yearly(world, glow):
    _, facial, _ = glow
    tier = TierFactory(practice=world["practice"], code="glow-year", name="Glow yearly",
                       processor_name="Membership — Yearly", price_cents=199000, interval="year")
    TierBenefitFactory(tier=tier, service=facial, quantity_per_cycle=12, rollover=RolloverRule.NONE)
    return tier


def test_a_yearly_tier_is_an_annual_plan_and_renews_once_a_year(yearly, square, square_fake, client):
    fake = square_fake
    variation = fake.catalog[price_of(square, yearly)]
    [phase] = variation["subscription_plan_variation_data"]["phases"]
    assert phase["cadence"] == "ANNUAL" and phase["pricing"]["price_money"]["amount"] == 199000

    member, m, sub_id = enroll(square, fake, yearly)
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1
    assert (m.current_period_start, m.current_period_end) == (at("2026-01-05", 0), at("2027-01-05", 0))
    assert fake.subscriptions[sub_id]["charged_through_date"] == "2027-01-05"
    assert balances(m)["hydrafacial"] == 12

    # A month on nothing is due: Square bills the next cycle on the date it is charged through.
    fake.now = at("2026-02-05")
    fake.apply_due_actions()
    assert fake.outbox == [] and len(fake.invoices) == 1

    fake.now = at("2027-01-05")
    renewal = fake.bill(sub_id)
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert m.cycle_number == 2 and balances(m)["hydrafacial"] == 12      # no rollover: last year's expired
    assert (m.current_period_start, m.current_period_end) == (at("2027-01-05", 0), at("2028-01-05", 0))
    invoice = Invoice.objects.get(processor_invoice_id=renewal)
    assert (invoice.period_start, invoice.period_end, invoice.amount_paid_cents) == (
        at("2027-01-05", 0), at("2028-01-05", 0), 199000)
    assert fake.subscriptions[sub_id]["charged_through_date"] == date(2028, 1, 5).isoformat()


def test_a_monthly_tier_still_bills_month_by_month(world, square, square_fake, client):
    fake = square_fake
    member, m, sub_id = enroll(square, fake, world["tier"])
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    assert (m.current_period_start, m.current_period_end) == (at("2026-01-05", 0), at("2026-02-05", 0))
    [phase] = fake.catalog[price_of(square, world["tier"])]["subscription_plan_variation_data"]["phases"]
    assert phase["cadence"] == "MONTHLY"


def test_a_yearly_invoice_heard_before_its_membership_exists_gets_its_year_once_it_does(yearly, square, square_fake,
                                                                                     client):
    """The invoice waits for its membership (unknown yet) and is read again at each attempt: the year
    comes from the tier once the membership is there."""
    from datetime import timedelta

    from integrations import inbox
    from memberships import services
    from tests.factories import MemberFactory

    fake = square_fake
    customer = square.ensure_customer(member_ref="mb_late", existing_ref="", idempotency_key="", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref="mb_late")
    sub = square.ensure_subscription(customer_ref=customer, membership_ref="ms_late",
                                     price_ref=price_of(square, yearly),
                                     metadata={"card_ref": card}, idempotency_key="")
    deliver(fake, client)
    inbox.process_due(now=fake.now)

    member = MemberFactory(practice=yearly.practice, processor_customer_id=customer)
    m = services.enroll_member(member=member, tier=yearly, actor=services.Actor.system(), idempotency_key="late",
                               now=fake.now, processor_subscription_id=sub.subscription_ref)
    work(fake.now + timedelta(days=1))
    m.refresh_from_db()
    assert m.cycle_number == 1 and m.current_period_end == at("2027-01-05", 0)


def test_the_cycle_length_follows_the_tier_a_cycle_is_billed_at(yearly, world):
    """A monthly member moving to the yearly tier at the next cycle: Square swaps the plan at the
    cycle's end, so the invoice starting then is a year long, one of the current period a month; an
    invoice of a subscription the ledger does not know (yet) reads as a month."""
    from integrations.processors.square_inbound import tier_interval
    from memberships import services
    from tests.factories import MemberFactory, active_membership

    m = active_membership(tier=world["tier"], member=MemberFactory(practice=yearly.practice), now=at("2026-01-05"))
    m.processor_subscription_id = "SUB-MOVING"
    m.current_period_start, m.current_period_end = at("2026-01-05", 0), at("2026-02-05", 0)   # as Square billed
    m.save(update_fields=["processor_subscription_id", "current_period_start", "current_period_end"])
    services.change_tier(membership=m, new_tier=yearly, effective="next_cycle", actor=services.Actor.system(),
                         idempotency_key="to-yearly", now=at("2026-01-10"))
    m.refresh_from_db()
    end = m.current_period_end
    assert end is not None and m.pending_tier_id == yearly.pk

    assert tier_interval("SUB-MOVING", end) == "year"
    assert tier_interval("SUB-MOVING", m.current_period_start) == "month"
    assert tier_interval("SUB-UNKNOWN", end) == ""


def test_a_failed_yearly_renewal_is_chased_and_its_late_payment_grants_the_year_once(yearly, square, square_fake,
                                                                                       client):
    from billing.models import DunningCase, DunningCaseStatus

    fake = square_fake
    member, m, sub_id = enroll(square, fake, yearly)
    deliver(fake, client)
    work(fake.now)
    fake.now = at("2027-01-05")
    renewal = fake.bill(sub_id, fail_code="INSUFFICIENT_FUNDS")
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    case = DunningCase.objects.get(invoice_ref=renewal)
    assert m.status == MembershipStatus.PAST_DUE and case.status == DunningCaseStatus.OPEN
    invoice = Invoice.objects.get(processor_invoice_id=renewal)
    assert (invoice.period_start, invoice.period_end) == (at("2027-01-05", 0), at("2028-01-05", 0))

    fake.now = at("2027-01-09")
    fake.pay_invoice(renewal)
    deliver(fake, client)
    work(fake.now)
    fake.emit("invoice.payment_made", "invoice", fake.invoices[renewal])      # told twice
    deliver(fake, client)
    work(fake.now)
    m.refresh_from_db()
    case.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and case.status == DunningCaseStatus.RECOVERED
    assert m.cycle_number == 2 and balances(m)["hydrafacial"] == 12
    assert (m.current_period_start, m.current_period_end) == (at("2027-01-05", 0), at("2028-01-05", 0))
