"""What the tier-change confirmation says Stripe will bill, against Stripe's documented behaviour.
`proration_behavior` ("Determines how to handle prorations when the billing cycle changes (e.g., when
switching plans ...)", stripe-python's SubscriptionModifyParams): `none` → the new price from the next
invoice, nothing charged or credited now; `create_prorations` → the difference on the next invoice;
`always_invoice` → invoiced at once. That holds while the two prices bill at the same interval. Stripe
("Change subscriptions"): "changing to a price with a different billing interval" results in a
proration, and a billing period's dates follow "the recurring interval of its price" and the billing
cycle anchor — a monthly → yearly change restarts the period on the day of the change and invoices the
new price then, which the ledger would not grant until the next renewal: such a change is refused at a
`tier_sync` Stripe practice (tests/staff/test_interval_change.py)."""

import pytest
from django.urls import reverse

from memberships.models import AutomationStage
from tests.factories import TierBenefitFactory, TierFactory, ana_garcia
from tests.staff.conftest import form_value

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(client, front_desk, glow):
    tier = glow[0]
    tier.practice.automation_stage = AutomationStage.TIER_SYNC       # the ledger changes the subscription
    tier.practice.save(update_fields=["automation_stage"])
    client.force_login(front_desk)
    return client


@pytest.fixture
def member(glow):
    return ana_garcia(glow[0])[0]


def confirmation(client, member, tier, effective) -> str:
    url = reverse("memberships:change_tier", args=[member.pk])
    token = form_value(client.get(url).content.decode(), "token")
    response = client.post(url, {"token": token, "tier": tier.pk, "effective": effective})
    assert response.status_code == 200 and "What will happen" in response.content.decode()
    return " ".join(response.content.decode().split())


def tier(glow, *, interval, price_cents, code):
    made = TierFactory(practice=glow[0].practice, code=code, name=code.capitalize(), price_cents=price_cents,
                       interval=interval, rank=2)
    TierBenefitFactory(tier=made, service=glow[1], quantity_per_cycle=12)
    return made


@pytest.mark.parametrize("setting, words", [
    ("none", "the new price is charged from the next invoice; nothing is charged or credited"),
    ("create_prorations", "the difference for the rest of this period is added to the next invoice"),
    ("always_invoice", "the difference for the rest of this period is invoiced at once"),
])
def test_a_change_now_at_the_same_interval_states_stripes_proration(desk, member, glow, settings, setting, words):
    settings.STRIPE_PRORATION_BEHAVIOR = setting
    html = confirmation(desk, member, tier(glow, interval="month", price_cents=29900, code="radiance"), "now")
    assert words in html


def test_a_change_at_the_renewal_at_the_same_interval_waits_for_it(desk, member, glow):
    html = confirmation(desk, member, tier(glow, interval="month", price_cents=29900, code="radiance"),
                        "next_cycle")
    assert "stays $199.00/month until the renewal" in html and "Stripe bills" not in html
