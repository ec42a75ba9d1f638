"""Prices per location where the front desk and the manager read them: the enrollment and tier-change
confirmations state what the member will pay at their home location (not the tier's list price), and
the dashboard's MRR counts what each membership pays (its pricing location's own price)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import metrics
from memberships import services
from memberships.models import Location, TierLocationPrice
from tests.factories import MemberFactory, TierFactory
from tests.staff.conftest import form_value

pytestmark = pytest.mark.django_db


@pytest.fixture
def south(practice, glow):
    south = Location.objects.create(practice=practice, name="South")
    TierLocationPrice.objects.create(tier=glow[0], location=south, price_cents=17900)
    return south


@pytest.fixture
def luxe(practice, south):
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900, rank=3)
    TierLocationPrice.objects.create(tier=luxe, location=south, price_cents=32900)
    return luxe


def _confirmation(client, url, data):
    page = client.get(url).content.decode()
    answer = client.post(url, {"token": form_value(page, "token"), **data})
    assert answer.status_code == 200, answer.content.decode()[:2000]
    return answer.content.decode()


def _enroll(member, tier, key):
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=key,
                                  now=timezone.now())


def test_the_confirmations_state_the_price_at_the_members_location(client, front_desk, practice, glow, south, luxe):
    client.force_login(front_desk)
    newcomer = MemberFactory(practice=practice, home_location=south, first_name="Nina", last_name="Park")
    html = _confirmation(client, reverse("memberships:enroll", args=[newcomer.pk]), {"tier": glow[0].pk})
    assert "Nina Park joins Glow at $179.00/month" in html and "$199.00" not in html

    member = _enroll(MemberFactory(practice=practice, home_location=south), glow[0], "e-south").member
    url = reverse("memberships:change_tier", args=[member.pk])
    now = _confirmation(client, url, {"tier": luxe.pk, "effective": "now"})
    assert "the price goes from $179.00/month to $329.00/month" in now
    later = _confirmation(client, url, {"tier": luxe.pk, "effective": "next_cycle"})
    assert "The price stays $179.00/month until the renewal" in later and "then becomes $329.00/month" in later
    assert "$349.00" not in now + later and "$199.00" not in now + later


def test_mrr_counts_what_each_membership_pays(practice, glow, south):
    north = Location.objects.create(practice=practice, name="North")
    when = timezone.now() - timedelta(days=40)
    for i, home in enumerate([south, south, north]):
        membership = _enroll(MemberFactory(practice=practice, home_location=home), glow[0], f"e-{i}")
        type(membership).objects.filter(pk=membership.pk).update(status="active", started_at=when)
    series = metrics.members_by_tier_over_time(practice_id=practice.pk, now=timezone.now(), months=3)
    assert series.total_members[-1] == 3
    assert series.total_mrr_cents[-1] == 2 * 17900 + 19900        # not 3 × the list price
    assert series.total_mrr_cents[-2] == 2 * 17900 + 19900        # last month's end too


def test_a_scheduled_change_taken_at_the_renewal_names_the_price_at_the_members_location(practice, glow, south, luxe,
                                                                                          manager):
    """The timeline, the processor's delivery ("would have: change the subscription price at …") and
    the MRR replay read the TIER_CHANGED event's price: the member's location's price for the new tier."""
    from integrations.processors.sync import ProcessorDestination
    from memberships.models import Event, EventKind

    membership = _enroll(MemberFactory(practice=practice, home_location=south), glow[0], "e-1")
    membership = services.refill_entitlements(membership=membership, cycle_key="in_1", actor=services.Actor.processor(),
                                              now=timezone.now())
    services.change_tier(membership=membership, new_tier=luxe, effective="next_cycle",
                         actor=services.Actor.staff(manager), idempotency_key="to-luxe", now=timezone.now())
    services.refill_entitlements(membership=type(membership).objects.get(pk=membership.pk), cycle_key="in_2",
                                 actor=services.Actor.processor(), now=timezone.now())
    taken = Event.objects.get(membership=membership, kind=EventKind.TIER_CHANGED)
    assert taken.payload["price_cents"] == 32900
    assert ProcessorDestination().describe(taken) == "change the subscription price at $329.00"


def test_a_change_at_the_renewal_never_reprices_the_month_already_running(client, manager, practice, glow, south,
                                                                          luxe):
    """A member priced at the tier's list price who moved to South (where Glow costs less) schedules
    Luxe: until the renewal, and for good if the change is withdrawn, she pays what she paid; Luxe is
    then priced where her membership is priced (the list price), as the confirmation says. A member
    already priced at South gets South's Luxe."""
    from memberships.models import Membership
    from memberships.services.home_location import move_home_location
    from memberships.services.location_prices import membership_price

    north = Location.objects.create(practice=practice, name="North")
    moved = _enroll(MemberFactory(practice=practice, home_location=north), glow[0], "e-moved")
    move_home_location(member=moved.member, location=south, actor=services.Actor.staff(manager),
                       idempotency_key="move", now=timezone.now())
    client.force_login(manager)
    page = _confirmation(client, reverse("memberships:change_tier", args=[moved.member_id]),
                         {"tier": luxe.pk, "effective": "next_cycle"})
    assert "The price stays $199.00/month until the renewal" in page and "then becomes $349.00/month" in page
    actor = services.Actor.staff(manager)
    scheduled = services.change_tier(membership=Membership.objects.get(pk=moved.pk), new_tier=luxe,
                                     effective="next_cycle", actor=actor, idempotency_key="sched", now=timezone.now())
    assert membership_price(scheduled).cents == 19900                       # this month: what she pays
    assert membership_price(scheduled, tier=luxe).cents == 34900
    withdrawn = services.change_tier(membership=Membership.objects.get(pk=moved.pk), new_tier=glow[0],
                                     effective="next_cycle", actor=actor, idempotency_key="back", now=timezone.now())
    assert withdrawn.pending_tier_id is None and membership_price(withdrawn).cents == 19900

    at_south = _enroll(MemberFactory(practice=practice, home_location=south), glow[0], "e-south")
    scheduled = services.change_tier(membership=at_south, new_tier=luxe, effective="next_cycle", actor=actor,
                                     idempotency_key="sched-south", now=timezone.now())
    assert (membership_price(scheduled).cents, membership_price(scheduled, tier=luxe).cents) == (17900, 32900)
