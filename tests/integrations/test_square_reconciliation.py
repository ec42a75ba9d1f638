"""Reconciliation of a Square practice reads Square (the real SDK against the fake: SearchSubscriptions
by location, paged with its cursor; each plan variation's price and cadence; the latest invoice of an
entitled membership) and finds what Stripe's side finds, in the same words: a subscription on the wrong
plan, one Square no longer knows, one paused at Square but active here, one whose charge failed unheard,
one nobody in the ledger has. Square down: the run goes on without that side and says so. Runs on
SQLite and PostgreSQL."""

from datetime import date, datetime, timezone as dt_timezone

import pytest

from billing.models import Discrepancy
from billing.reconciliation.runs import run_reconciliation
from billing.reconciliation.snapshots import ledger_rows
from integrations.processors import square_read
from memberships.models import AutomationStage
from memberships.models.practice import Processor
from tests.factories import MemberFactory, TierFactory, active_membership
from tests.integrations.test_square_end_to_end import price_of
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def practice(glow):
    practice = glow[0].practice
    practice.processor, practice.automation_stage = Processor.SQUARE, AutomationStage.DUNNING
    practice.save()
    return practice


def on_square(square, fake, tier, *, plan_tier=None):
    """A member active on `tier` in the ledger, subscribed at Square on `plan_tier`'s plan (the same by
    default), first cycle charged."""
    m = active_membership(tier=tier, member=MemberFactory(practice=tier.practice), now=NOW)
    ref = f"mb_{m.member_id}"
    customer = square.ensure_customer(member_ref=ref, existing_ref="", idempotency_key="", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref=ref)
    sub = square.ensure_subscription(customer_ref=customer, membership_ref=f"ms_{m.pk}",
                                     price_ref=price_of(square, plan_tier or tier), metadata={"card_ref": card},
                                     idempotency_key="")
    m.processor_subscription_id = sub.subscription_ref
    m.save(update_fields=["processor_subscription_id"])
    m.member.processor_customer_id = customer
    m.member.save(update_fields=["processor_customer_id"])
    return m


def found(practice):
    return sorted((d.member_number, d.kind, d.message) for d in Discrepancy.objects.filter(practice=practice))


def test_square_discrepancies_read_like_stripes(practice, glow, square, square_fake):
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", processor_name="Membership — L",
                       price_cents=34900)
    for _ in range(3):
        on_square(square, fake, tier)                                    # in step, across pages
    wrong_plan = on_square(square, fake, tier, plan_tier=luxe)
    forgotten = on_square(square, fake, tier)
    fake.forget_subscription(forgotten.processor_subscription_id)
    paused = on_square(square, fake, tier)
    square.pause_collection(subscription_ref=paused.processor_subscription_id, resumes_at=None)
    fake.apply_due_actions(today=date(2026, 2, 20))
    fake.outbox.clear()
    unpaid = on_square(square, fake, tier)
    fake.now = datetime(2026, 2, 20, 9, 0, tzinfo=dt_timezone.utc)
    fake.bill(unpaid.processor_subscription_id, fail_code="CARD_DECLINED")  # its webhook not heard yet
    customer = square.ensure_customer(member_ref="mb_stray", existing_ref="", idempotency_key="", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref="mb_stray")
    stray = square.ensure_subscription(customer_ref=customer, membership_ref="ms_stray",
                                       price_ref=price_of(square, tier),
                                       metadata={"card_ref": card}, idempotency_key="").subscription_ref

    searches = fake.calls("POST", "/v2/subscriptions/search")
    rows = square_read.processor_source(practice=practice, ledger=ledger_rows(practice_id=practice.pk), page_size=2)
    assert fake.calls("POST", "/v2/subscriptions/search") - searches == 4          # 7 subscriptions, 2 a page
    assert len(rows) == 7

    run = run_reconciliation(practice=practice, now=NOW, trigger="test")
    assert "processor" in run.sources
    number = {m.pk: m.member.member_number for m in (wrong_plan, forgotten, paused, unpaid)}
    assert found(practice) == sorted([
        (number[wrong_plan.pk], "price_mismatch", "Pays $349.00 at the processor; the Glow tier costs $199.00"),
        (number[forgotten.pk], "missing", "No processor subscription for this membership"),
        (number[paused.pk], "status_mismatch", "Status is active in the ledger, paused at the processor"),
        (number[unpaid.pk], "unpaid_entitled",
         "Entitled in the ledger (active) but unpaid at the processor (active, last invoice open)"),
        ("", "missing", f"Processor subscription {stray} (active) has no membership in the ledger"),
    ])


def test_a_yearly_plan_under_a_monthly_tier_and_a_cancellation_at_the_cycle_end(practice, glow, square, square_fake):
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    yearly = TierFactory(practice=practice, code="glow-y", name="Glow yearly", processor_name="Membership — Y",
                         price_cents=19900, interval="year")
    on_the_year = on_square(square, fake, tier, plan_tier=yearly)
    leaving = on_square(square, fake, tier)
    square.cancel_subscription(subscription_ref=leaving.processor_subscription_id)

    run_reconciliation(practice=practice, now=NOW, trigger="test")

    rows = {d.member_number: d for d in Discrepancy.objects.filter(practice=practice)}
    assert rows[on_the_year.member.member_number].message == (
        "Pays $199.00/year at the processor; the Glow tier costs $199.00/month")
    assert rows[leaving.member.member_number].message == (
        "Status is active in the ledger, but the processor ends the subscription on 2026-02-20 "
        "(active, cancelled at the processor)")


def test_changes_square_makes_at_the_cycle_end_are_in_step_meanwhile(practice, glow, square, square_fake):
    """The ledger expects the scheduled tier's price from the next invoice, Square keeps the current
    plan until the cycle's end with a pending swap; the ledger pauses at once, Square at the cycle's
    end: in step, nothing to report."""
    from memberships import services

    fake, tier = square_fake, glow[0]
    fake.now = NOW
    lite = TierFactory(practice=practice, code="lite", name="Lite", processor_name="Membership — Li",
                       price_cents=14900)
    m = on_square(square, fake, tier)
    services.change_tier(membership=m, new_tier=lite, effective="next_cycle", actor=services.Actor.system(),
                         idempotency_key="down", now=NOW)
    square.change_price(subscription_ref=m.processor_subscription_id, price_ref=price_of(square, lite))
    assert fake.price_of(fake.subscriptions[m.processor_subscription_id]["plan_variation_id"]) == 19900

    paused = on_square(square, fake, tier)                     # paused here now, at Square from the cycle's end
    services.pause_membership(membership=paused, until=date(2026, 4, 1), actor=services.Actor.system(),
                              idempotency_key="p", now=NOW)
    square.pause_collection(subscription_ref=paused.processor_subscription_id, resumes_at=None)
    assert fake.subscriptions[paused.processor_subscription_id]["status"] == "ACTIVE"

    run_reconciliation(practice=practice, now=NOW, trigger="test")

    assert found(practice) == []


def test_a_subscription_replaced_by_a_tier_change_now_is_in_step(practice, glow, square, square_fake):
    """A tier change "now" at Square ends the subscription when the paid month ends and starts one on
    the new plan that day (PENDING until then; `square_tier_change`): neither is a discrepancy."""
    from memberships import services

    fake, tier = square_fake, glow[0]
    fake.now = NOW
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", processor_name="Membership — Lx",
                       price_cents=34900)
    m = on_square(square, fake, tier)
    old = fake.subscriptions[m.processor_subscription_id]
    square.cancel_subscription(subscription_ref=old["id"])
    new = square.ensure_subscription(customer_ref=old["customer_id"], membership_ref=f"ms_{m.pk}:luxe",
                                     price_ref=price_of(square, luxe), metadata={"card_ref": old["card_id"]},
                                     idempotency_key="")
    fake.subscriptions[new.subscription_ref].update(status="PENDING", start_date=old["canceled_date"],
                                                    invoice_ids=[])
    services.change_tier(membership=m, new_tier=luxe, effective="now", actor=services.Actor.system(),
                         idempotency_key="up", now=NOW)
    m.refresh_from_db()
    m.processor_subscription_id = new.subscription_ref
    m.save(update_fields=["processor_subscription_id"])

    run_reconciliation(practice=practice, now=NOW, trigger="test")

    assert found(practice) == []


def test_a_plan_deleted_at_square_still_compares_the_status(practice, glow, square, square_fake):
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    paused = on_square(square, fake, tier)
    square.pause_collection(subscription_ref=paused.processor_subscription_id, resumes_at=None)
    fake.apply_due_actions(today=date(2026, 2, 20))
    fake.catalog.pop(fake.subscriptions[paused.processor_subscription_id]["plan_variation_id"])

    run = run_reconciliation(practice=practice, now=NOW, trigger="test")

    assert "processor" in run.sources
    assert found(practice) == [(paused.member.member_number, "status_mismatch",
                                "Status is active in the ledger, paused at the processor")]


@pytest.mark.parametrize("status,code,category", [
    (429, "RATE_LIMITED", "RATE_LIMIT_ERROR"), (500, "INTERNAL_SERVER_ERROR", "API_ERROR"),
    (401, "ACCESS_TOKEN_EXPIRED", "AUTHENTICATION_ERROR"),
])
def test_square_refusing_the_read_leaves_that_side_out_and_says_so(practice, glow, square, square_fake, status,
                                                                    code, category):
    on_square(square, square_fake, glow[0])
    square_fake.fail_next(status, code, category)

    run = run_reconciliation(practice=practice, now=NOW, trigger="test")

    assert "processor" not in run.sources
    assert "processor: could not be read this time; it is tried again at the next run" in run.notes
    assert not [d for d in Discrepancy.objects.filter(practice=practice) if "processor" in d.values["sides"]]


def test_a_subscription_square_deactivated_reads_as_deactivated_not_ended(practice, glow, square, square_fake):
    """Square deactivates what it cannot bill (resumable, not an end): the manager reads that the member
    is active here and deactivated at Square, not that Square cancelled her."""
    fake, tier = square_fake, glow[0]
    fake.now = NOW
    m = on_square(square, fake, tier)
    fake.subscriptions[m.processor_subscription_id]["status"] = "DEACTIVATED"
    run_reconciliation(practice=practice, now=NOW)
    assert found(practice) == [(m.member.member_number, "status_mismatch",
                                "Status is active in the ledger, deactivated at the processor")]
