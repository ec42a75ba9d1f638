"""Gates that follow the member's location, from the member's side: the Square card page (the
member's "update my card" and an older staff link) starts a subscription only where the member's
home location runs tier sync — not because the practice does — and it names the price the member
pays at their location (the price the subscription is then started at)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations.processors.square_cards import card_page_url
from memberships import services
from memberships.models import AutomationStage, Location, TierLocationPrice
from memberships.models.practice import Processor
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def square_practice(settings, glow):
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.SQUARE_APPLICATION_ID = "sandbox-sq0idb-test"
    practice = glow[0].practice
    practice.processor = Processor.SQUARE
    practice.save(update_fields=["processor"])
    return practice


def _enrolled_at(location, tier):
    member = MemberFactory(practice=tier.practice, home_location=location, email="nora@example.com")
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=timezone.now())


def _page(client, membership):
    return client.get(card_page_url(membership=membership).replace("http://testserver", ""))


def test_the_card_page_starts_nothing_for_a_member_whose_location_observes(client, square_practice, glow):
    square_practice.automation_stage = AutomationStage.TIER_SYNC
    square_practice.save(update_fields=["automation_stage"])
    observing = Location.objects.create(practice=square_practice, name="New clinic",
                                        automation_stage=AutomationStage.OBSERVE)
    syncing = Location.objects.create(practice=square_practice, name="Main clinic")
    held = _page(client, _enrolled_at(observing, glow[0]))
    assert held.status_code == 409
    assert "a subscription is not started from here" in held.content.decode()
    assert 'name="source_token"' not in held.content.decode()
    assert _page(client, _enrolled_at(syncing, glow[0])).status_code == 200


def test_a_location_ahead_of_its_practice_starts_it_at_its_own_price(client, square_practice, glow):
    square_practice.automation_stage = AutomationStage.OBSERVE
    square_practice.save(update_fields=["automation_stage"])
    pilot = Location.objects.create(practice=square_practice, name="Pilot clinic",
                                    automation_stage=AutomationStage.TIER_SYNC)
    TierLocationPrice.objects.create(tier=glow[0], location=pilot, price_cents=17900)
    page = _page(client, _enrolled_at(pilot, glow[0]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "$179.00/month" in html and "$199.00" not in html
