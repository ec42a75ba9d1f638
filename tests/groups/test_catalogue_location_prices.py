"""One catalogue, prices per location: a tier version may carry a location's own price. A member whose
home location has one pays it from enrollment (the timeline, the processor's plan and reconciliation
all say that price); moving home changes nothing until the next tier change."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.reconciliation.snapshots import ledger_rows
from integrations.processors import sync
from memberships import services
from memberships.models import Event, EventKind, Location, Membership, RedeemableAt, TierLocationPrice
from memberships.services.home_location import move_home_location
from memberships.services.location_prices import membership_price
from tests.factories import MemberFactory, PracticeFactory, TierFactory


class PlanRecorder:
    """Just the processor's `ensure_price`: what plans were asked for."""

    def __init__(self):
        self.plans = []

    def ensure_price(self, *, tier_ref, plan_id, product_name, amount_cents, currency, interval, idempotency_key):
        self.plans.append((plan_id, product_name, amount_cents))
        return f"price_{plan_id}"


@pytest.fixture
def priced(practice, glow):
    north = Location.objects.create(practice=practice, name="North")
    south = Location.objects.create(practice=practice, name="South")
    TierLocationPrice.objects.create(tier=glow[0], location=south, price_cents=17900)
    return north, south


def _enroll(member, tier, key):
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=key,
                                  now=timezone.now())


def test_a_member_at_home_where_the_tier_has_its_own_price_pays_it(priced, glow, practice):
    north, south = priced
    at_south = _enroll(MemberFactory(practice=practice, home_location=south), glow[0], "e-south")
    at_north = _enroll(MemberFactory(practice=practice, home_location=north), glow[0], "e-north")
    assert (at_south.price_location_id, at_north.price_location_id) == (south.pk, None)
    assert (membership_price(at_south).cents, membership_price(at_north).cents) == (17900, 19900)
    enrolled = Event.objects.get(membership=at_south, kind=EventKind.ENROLLED)
    assert enrolled.summary == "Enrolled in Glow at $179.00/month" and enrolled.payload["price_cents"] == 17900
    # the processor: a plan of its own for South's price, made once, under the tier's neutral name
    processor = PlanRecorder()
    for _ in range(2):
        south_ref = sync.ensure_price(processor, at_south.tier, idempotency_key="k", location_id=south.pk)
        tier_ref = sync.ensure_price(processor, at_north.tier, idempotency_key="k", location_id=None)
    assert processor.plans == [(f"{sync.plan_id_for(glow[0])}_l{south.pk}", "Membership — Tier B", 17900),
                               (sync.plan_id_for(glow[0]), "Membership — Tier B", 19900)]
    assert TierLocationPrice.objects.get(location=south).processor_price_id == south_ref != tier_ref
    # reconciliation compares the processor with what the member pays, not the tier's list price
    prices = {row.member_id: row.price_cents for row in ledger_rows(practice_id=practice.pk)}
    assert prices == {at_south.member_id: 17900, at_north.member_id: 19900}


def test_moving_home_keeps_the_price_until_the_next_tier_change(priced, glow, practice, manager):
    north, south = priced
    membership = _enroll(MemberFactory(practice=practice, home_location=north), glow[0], "e-1")
    move_home_location(member=membership.member, location=south, actor=services.Actor.staff(manager),
                       idempotency_key="move", now=timezone.now())
    membership.refresh_from_db()
    assert membership_price(membership).cents == 19900                 # unchanged by the move
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    TierLocationPrice.objects.create(tier=luxe, location=south, price_cents=32900)
    changed = services.change_tier(membership=Membership.objects.get(pk=membership.pk), new_tier=luxe,
                                   actor=services.Actor.staff(manager), idempotency_key="to-luxe", now=timezone.now())
    assert changed.price_location_id == south.pk and membership_price(changed).cents == 32900
    event = Event.objects.get(membership=membership, kind=EventKind.TIER_CHANGED)
    assert (event.payload["old_price_cents"], event.payload["price_cents"]) == (19900, 32900)


def test_a_location_price_is_a_location_of_the_tiers_practice_and_follows_new_versions(priced, glow, practice):
    tier = glow[0]
    other = Location.objects.create(practice=PracticeFactory(slug="elsewhere"), name="Elsewhere")
    with pytest.raises(ValidationError, match="this tier's practice's locations"):
        TierLocationPrice(tier=tier, location=other, price_cents=100).full_clean()
    tier.redeemable_at = RedeemableAt.HOME
    tier.save(update_fields=["redeemable_at"])
    new = services.new_tier_version(tier=tier, now=timezone.now(), price_cents=20900)
    assert new.redeemable_at == RedeemableAt.HOME
    assert list(new.location_prices.values_list("location__name", "price_cents", "processor_price_id")) == [
        ("South", 17900, "")]


def test_the_chart_shows_what_the_member_pays(client, front_desk, priced, glow, practice):
    from django.urls import reverse

    north, south = priced
    at_south = _enroll(MemberFactory(practice=practice, home_location=south), glow[0], "e-s")
    at_north = _enroll(MemberFactory(practice=practice, home_location=north), glow[0], "e-n")
    client.force_login(front_desk)
    south_chart = client.get(reverse("memberships:chart", args=[at_south.member_id])).content.decode()
    north_chart = client.get(reverse("memberships:chart", args=[at_north.member_id])).content.decode()
    assert "$179.00/month (a location's own price)" in south_chart
    assert "$199.00/month" in north_chart and "a location's own price" not in north_chart
