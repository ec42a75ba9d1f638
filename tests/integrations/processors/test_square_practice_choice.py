"""A practice chooses its processor in the admin (Practice.processor): Stripe by default, Square on
choice; the outbox then talks to that processor."""

import pytest

from integrations.processors import sync
from integrations.processors.square import SquareProcessor
from memberships.models.practice import Processor

pytestmark = pytest.mark.django_db


def test_the_admin_offers_stripe_and_square_with_stripe_by_default(admin_client, practice):
    page = admin_client.get(f"/admin/memberships/practice/{practice.pk}/change/").content.decode()

    assert 'name="processor"' in page
    assert '<option value="stripe" selected>Stripe</option>' in page
    assert '<option value="square">Square</option>' in page


def test_the_outbox_uses_the_practices_processor(practice, settings, monkeypatch):
    monkeypatch.setattr(sync, "get_processor", lambda: "the stripe adapter")
    assert sync.processor_for(practice) == "the stripe adapter"

    practice.processor = Processor.SQUARE
    settings.SQUARE_API_BASE, settings.SQUARE_LOCATION_ID = "http://127.0.0.1:9", "L_TEST"
    chosen = sync.processor_for(practice)
    assert isinstance(chosen, SquareProcessor) and chosen.location_id == "L_TEST"
