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
