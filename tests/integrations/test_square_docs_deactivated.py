"""A subscription Square deactivated, as Square's reference words it: DEACTIVATED is a status of its own
("The subscription is deactivated", SubscriptionStatus), the event "The subscription was deactivated"
(SubscriptionEventSubscriptionEventType) whose reasons are SubscriptionEventInfoCode's — the location
is not active or cannot accept payments, the customer profile was deleted or has no email or no name —
and ResumeSubscription "resume[s] a paused or a deactivated subscription". It is not an end (the
membership is not cancelled for it: test_square_sync), and it bills nothing: a tier change asked of
it fails saying Square deactivated it, not that it ended."""

import pytest
from django.utils import timezone

from integrations.processors.base import ProcessorRejected
from integrations.processors.square_tier_change import replace_subscription

from .test_square_end_to_end import deliver, enroll, price_of, work, world  # noqa: F401  (fixtures)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_a_tier_change_on_a_deactivated_subscription_says_square_deactivated_it(  # noqa: F811
        world, square, square_fake, client):
    member, membership, sub_id = enroll(square, square_fake, world["tier"])
    deliver(square_fake, client)
    work(square_fake.now)
    square_fake.subscriptions[sub_id]["status"] = "DEACTIVATED"     # e.g. the location stopped taking payments
    lite = price_of(square, world["lite"])

    with pytest.raises(ProcessorRejected, match="Square deactivated subscription .* resumed at Square"):
        square.change_price(subscription_ref=sub_id, price_ref=lite)
    membership.refresh_from_db()
    with pytest.raises(ProcessorRejected, match="Square deactivated subscription"):
        replace_subscription(square, membership, membership_ref=f"ms_{membership.pk}", price_ref=lite,
                             today=timezone.now().date())
    assert square_fake.calls("POST", f"/v2/subscriptions/{sub_id}/swap-plan") == 0
    assert len(square_fake.subscriptions) == 1                       # nothing started in its place
