"""The price a member joins online at is the one the join page showed and the hosted page charged
(the tier's), also for a member already on file whose home clinic has its own price for the tier:
the ledger, her page and her notices say what her card is charged."""

import pytest
from django.utils import timezone

from integrations import inbox
from memberships.models import Event, EventKind, Location, Membership, TierLocationPrice
from portal.me.page import member_page
from tests.factories import MemberFactory
from tests.support.stripe_events import post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)
from .test_join_confirmed import completed, first_invoice, start

pytestmark = pytest.mark.django_db


def test_a_member_whose_clinic_has_its_own_price_joins_online_at_the_price_she_was_charged(
        client, online, processor):  # noqa: F811
    practice, tier = online["practice"], online["tier"]
    south = Location.objects.create(practice=practice, name="South")
    TierLocationPrice.objects.create(tier=tier, location=south, price_cents=17900)
    MemberFactory(practice=practice, first_name="Nora", last_name="Newman", email="nora.newman@example.com",
                  home_location=south)
    assert "$199.00/month" in client.get("/join/glow/").content.decode()
    attempt = start(client, online)
    [checkout] = processor.checkouts
    assert "_l" not in checkout["price_ref"]                      # the hosted page charges the tier's price
    post_event(client, completed(attempt))
    post_event(client, first_invoice())
    inbox.process_due(now=timezone.now())

    membership = Membership.objects.get()
    assert membership.price_location_id is None
    enrolled = Event.objects.get(membership=membership, kind=EventKind.ENROLLED)
    assert enrolled.summary.endswith("at $199.00/month")
    assert member_page(member=membership.member, now=timezone.now()).price == "$199.00/month"
