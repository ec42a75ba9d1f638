"""Tier changes at a Square practice on a subscription that has not started, and on the location's
calendar. Against the fake Square (the real SDK, every answer checked against its models); SQLite and
PostgreSQL.

- Square swaps a plan only at the end of a cycle: a "next cycle" change asked of a subscription still
  waiting for its start date (a "now" change's new one, PENDING) would wait out its first cycle, so
  the first month would be billed at the old price while the ledger grants the new tier. The waiting
  subscription is replaced instead — once, however the worker retries, even when Square's answer to
  the creation is lost — and the first invoice is at the newest price.
- "Today" for Square is the day where the location is (its subscriptions' dates are days of their
  own time zone): at 22:00 in Los Angeles it is still today there, though UTC's date is tomorrow."""

from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from integrations.processors import sync
from integrations.processors.base import ProcessorUnavailable
from memberships import services
from memberships.models import Membership, MembershipStatus, RolloverRule
from tests.factories import TierBenefitFactory, TierFactory

from .test_square_cards import on_square, square_env, square_fake, square_fake_class, subscribed  # noqa: F401
from .test_square_tier_change import luxe, paid_month, settle  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def essentials(on_square, glow):
    tier, facial, credit = glow
    cheap = TierFactory(practice=tier.practice, code="essentials", name="Essentials",
                        processor_name="Membership — Tier A", price_cents=9900, rank=1)
    TierBenefitFactory(tier=cheap, service=credit, quantity_per_cycle=2500, rollover=RolloverRule.NONE)
    return cheap


def change(membership, tier, effective, *, now, key):
    services.change_tier(membership=membership, new_tier=tier, effective=effective, actor=services.Actor.system(),
                         idempotency_key=key, now=now)
    membership.refresh_from_db()


def first_invoice_cents(fake, subscription_id) -> int:
    invoice = fake.invoices[fake.bill(subscription_id)]
    return int(invoice["payment_requests"][0]["computed_amount_money"]["amount"])


def test_a_next_cycle_change_after_a_now_change_bills_the_first_month_at_the_newest_price(
        paid_month, luxe, essentials, square_fake, client):
    member, membership, glow_id = paid_month
    through = square_fake.subscriptions[glow_id]["charged_through_date"]
    now = timezone.now()
    change(membership, luxe, "now", now=now, key="now:luxe")                  # Glow → Luxe now
    settle(now)
    membership.refresh_from_db()
    luxe_id = membership.processor_subscription_id
    assert square_fake.subscriptions[luxe_id]["status"] == "PENDING"          # starts when the paid month ends

    change(membership, essentials, "next_cycle", now=now, key="next:essentials")   # then Essentials next cycle
    settle(now)
    membership.refresh_from_db()
    assert membership.pending_tier == essentials
    current = square_fake.subscriptions[membership.processor_subscription_id]
    assert current["id"] not in (glow_id, luxe_id)
    assert current["start_date"] == through and current["status"] == "PENDING"
    assert square_fake.price_of(current["plan_variation_id"]) == 9900
    waiting = square_fake.subscriptions[luxe_id]
    assert waiting["canceled_date"] == through                                # ends before it bills
    assert not [a for a in square_fake._actions[luxe_id] if a["type"] == "SWAP_PLAN"]
    assert len(square_fake.invoices) == 1                                     # nothing charged now

    # the paid month ends: the only subscription that bills is the Essentials one, at its price
    square_fake.now = datetime.combine(date.fromisoformat(through), time(12), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()
    assert square_fake.subscriptions[glow_id]["status"] == waiting["status"] == "CANCELED"
    assert first_invoice_cents(square_fake, membership.processor_subscription_id) == 9900
    assert not waiting["invoice_ids"]
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    settle(square_fake.now + timedelta(minutes=1))
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.tier == essentials
    assert membership.processor_subscription_id == current["id"]


def test_the_replacement_survives_a_lost_answer_and_retries(paid_month, luxe, essentials, square_fake):
    member, membership, glow_id = paid_month
    now = timezone.now()
    change(membership, luxe, "now", now=now, key="now:luxe")
    settle(now)
    membership.refresh_from_db()
    luxe_id = membership.processor_subscription_id
    change(membership, essentials, "next_cycle", now=now, key="next:essentials")
    processor = sync.processor_for(member.practice)

    square_fake.lose_answer("POST", "/v2/subscriptions")       # Square creates it; we hear a 500
    with pytest.raises(ProcessorUnavailable):
        sync.sync_tier(processor, membership, scheduled=True, idempotency_key="retry", now=now)
    membership.refresh_from_db()
    assert membership.processor_subscription_id == luxe_id
    for _ in range(2):                                          # the worker's retries, then the outbox's own
        sync.sync_tier(processor, membership, scheduled=True, idempotency_key="retry", now=now)
        membership.refresh_from_db()
    settle(now)
    membership.refresh_from_db()
    assert len(square_fake.subscriptions) == 3                  # Glow, Luxe (waiting, cancelled), Essentials
    current = square_fake.subscriptions[membership.processor_subscription_id]
    assert current["id"] not in (glow_id, luxe_id) and square_fake.price_of(current["plan_variation_id"]) == 9900
    assert square_fake.calls("POST", f"/v2/subscriptions/{luxe_id}/cancel") == 1
    assert square_fake.calls("POST", f"/v2/subscriptions/{luxe_id}/swap-plan") == 0


def test_a_next_cycle_change_of_a_started_subscription_is_still_a_swap(paid_month, essentials, square_fake):
    """The replacement is only for a subscription not started: a running one keeps Square's swap at
    the renewal (nothing cancelled, no new subscription)."""
    member, membership, glow_id = paid_month
    now = timezone.now()
    change(membership, essentials, "next_cycle", now=now, key="next:essentials")
    settle(now)
    membership.refresh_from_db()
    assert membership.processor_subscription_id == glow_id and len(square_fake.subscriptions) == 1
    (swap,) = [a for a in square_fake._actions[glow_id] if a["type"] == "SWAP_PLAN"]
    assert swap["effective_date"] == square_fake.subscriptions[glow_id]["charged_through_date"]
    assert not square_fake.subscriptions[glow_id].get("canceled_date")


def test_a_late_evening_change_in_los_angeles_uses_los_angeles_today(paid_month, luxe, square_fake):
    """A paused member moved to Luxe "now" at 22:00 in Los Angeles: her new subscription must not charge
    on creation, so it starts tomorrow at the earliest — tomorrow in Los Angeles, where Square reads
    its dates. By UTC's date (already tomorrow) it would start a day later, her billing day moved."""
    member, membership, glow_id = paid_month
    assert member.practice.timezone == "America/Los_Angeles" == square_fake.timezone
    now = timezone.now()
    services.pause_membership(membership=membership, until=(now + timedelta(days=90)).date(),
                              actor=services.Actor.system(), idempotency_key="pause", now=now)
    settle(now)
    through = date.fromisoformat(square_fake.subscriptions[glow_id]["charged_through_date"])
    square_fake.now = datetime.combine(through, time(12), tzinfo=dt_timezone.utc)
    square_fake.apply_due_actions()                             # Square pauses it when the paid month ends
    assert square_fake.subscriptions[glow_id]["status"] == "PAUSED"
    square_fake.outbox.clear()

    day = through + timedelta(days=3)
    # the clock as the workers read it (`timezone.now()`: UTC), 22:00 in Los Angeles
    evening = datetime.combine(day, time(22), tzinfo=LOS_ANGELES).astimezone(dt_timezone.utc)
    assert evening.date() == day + timedelta(days=1)
    square_fake.now = evening
    membership.refresh_from_db()
    change(membership, luxe, "now", now=evening, key="now:luxe")
    settle(evening)
    membership.refresh_from_db()
    new = square_fake.subscriptions[membership.processor_subscription_id]
    assert new["id"] != glow_id and membership.status == MembershipStatus.PAUSED
    assert new["start_date"] == (day + timedelta(days=1)).isoformat() and new["status"] == "PENDING"
    assert [(a["type"], a["effective_date"]) for a in square_fake._actions[new["id"]]] == \
        [("PAUSE", new["start_date"])]
    assert len(square_fake.invoices) == 1                       # nothing charged at the new price
    assert Membership.objects.filter(pk=membership.pk, processor_subscription_id=new["id"]).exists()
