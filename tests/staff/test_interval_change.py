"""A tier change between a monthly and a yearly tier at a Stripe practice whose subscriptions the ledger
changes (`tier_sync`). Stripe bills the new price for a full period as soon as the change reaches it
("at the renewal" too: the change is sent when made) and moves the renewal date to that day; that
invoice (`subscription_update`) opens no cycle in the ledger, so the member would pay a year and be
granted nothing until the next renewal. The change is refused, on the staff page (a form error saying
what to do instead) and at the door (`interval_change_not_supported`), and nothing changes: tier,
balances, renewal, nothing sent to Stripe. Below `tier_sync` (the practice changes the subscription
itself) and at Square (which swaps plans at a cycle's end, so the next invoice grants the new tier)
the change goes through as before. Runs on SQLite and PostgreSQL."""

import html

import pytest
from django.urls import reverse

from memberships import selectors, services
from memberships.errors import IllegalTransition
from memberships.models import AutomationStage, Event, EventKind
from tests.factories import TierBenefitFactory, TierFactory, ana_garcia
from tests.staff.conftest import form_value

pytestmark = pytest.mark.django_db

REFUSAL = ("Glow bills monthly and Annual yearly: Stripe would bill Annual at once and move the renewal date, "
           "and the member's new benefits would not start until the next renewal. Instead, cancel this "
           "membership (its balance is frozen) and enroll the member in Annual: its first payment fills the "
           "new balances.")


def at_stage(practice, stage, processor="stripe"):
    practice.automation_stage, practice.processor = stage, processor
    practice.save(update_fields=["automation_stage", "processor"])


@pytest.fixture
def annual(glow):
    tier = TierFactory(practice=glow[0].practice, code="annual", name="Annual", price_cents=199900,
                       interval="year", rank=2)
    TierBenefitFactory(tier=tier, service=glow[1], quantity_per_cycle=12)
    return tier


@pytest.fixture
def ana(glow):
    return ana_garcia(glow[0])


def balances(membership) -> dict[str, str]:
    return {line.service_name: line.balance_display for line in selectors.balance_lines(membership=membership)}


def text(response) -> str:
    return " ".join(html.unescape(response.content.decode()).split())


def post_change(client, member, tier, effective, *, confirm: bool):
    url = reverse("memberships:change_tier", args=[member.pk])
    token = form_value(client.get(url).content.decode(), "token")
    data = {"token": token, "tier": tier.pk, "effective": effective, **({"confirm": "1"} if confirm else {})}
    return client.post(url, data)


def tier_events(membership):
    return Event.objects.filter(membership=membership,
                                kind__in=[EventKind.TIER_CHANGED, EventKind.TIER_CHANGE_SCHEDULED])


@pytest.mark.parametrize("effective", ["now", "next_cycle"])
@pytest.mark.parametrize("confirm", [False, True])
def test_the_desk_is_told_to_cancel_and_enroll_and_nothing_changes(client, front_desk, glow, annual, ana, effective,
                                                                   confirm):
    at_stage(glow[0].practice, AutomationStage.TIER_SYNC)
    member, membership = ana
    before = balances(membership)
    period_end = membership.current_period_end
    client.force_login(front_desk)

    response = post_change(client, member, annual, effective, confirm=confirm)

    assert response.status_code == 400
    page = text(response)
    assert REFUSAL in page and "What will happen" not in page
    membership.refresh_from_db()
    assert (membership.tier_id, membership.pending_tier_id) == (glow[0].pk, None)
    assert membership.current_period_end == period_end and balances(membership) == before
    assert not tier_events(membership).exists()                  # nothing for the outbox to send to Stripe
    chart = text(client.get(reverse("memberships:chart", args=[member.pk])))
    assert "Moves to Annual" not in chart and "$199.00/month" in chart


def test_a_yearly_member_moving_to_a_monthly_tier_is_refused_too(glow, annual):
    at_stage(glow[0].practice, AutomationStage.TIER_SYNC)
    _, membership = ana_garcia(annual)
    with pytest.raises(IllegalTransition) as refused:
        services.change_tier(membership=membership, new_tier=glow[0], effective="next_cycle",
                             actor=services.Actor.system(), idempotency_key="to-monthly", now=membership.started_at)
    assert refused.value.code == "interval_change_not_supported"
    assert "Annual bills yearly and Glow monthly" in refused.value.message
    membership.refresh_from_db()
    assert (membership.tier_id, membership.pending_tier_id) == (annual.pk, None)
    assert not tier_events(membership).exists()


def test_a_change_at_the_same_interval_still_goes_through(client, front_desk, glow, ana):
    at_stage(glow[0].practice, AutomationStage.TIER_SYNC)
    radiance = TierFactory(practice=glow[0].practice, code="radiance", name="Radiance", price_cents=29900, rank=2)
    member, membership = ana
    client.force_login(front_desk)
    assert post_change(client, member, radiance, "now", confirm=False).status_code == 200
    assert post_change(client, member, radiance, "now", confirm=True).status_code == 302
    membership.refresh_from_db()
    assert membership.tier_id == radiance.pk


def test_below_tier_sync_the_desk_changes_the_subscription_by_hand_as_before(client, front_desk, glow, annual, ana):
    at_stage(glow[0].practice, AutomationStage.REDEMPTIONS)
    member, membership = ana
    client.force_login(front_desk)

    page = text(post_change(client, member, annual, "now", confirm=False))
    assert "Annual starts now; the price goes from $199.00/month to $1,999.00/year." in page
    assert "change the price to $1,999.00/year in the processor's dashboard" in page
    assert post_change(client, member, annual, "now", confirm=True).status_code == 302
    membership.refresh_from_db()
    assert membership.tier_id == annual.pk


def test_at_square_the_plan_is_swapped_at_the_renewal_and_the_change_goes_through(glow, annual):
    """Square swaps the plan when the paid month ends; the invoice that starts then is a cycle of the
    yearly tier (tests/integrations/test_square_annual.py), so the year paid is the year granted."""
    at_stage(glow[0].practice, AutomationStage.TIER_SYNC, processor="square")
    _, membership = ana_garcia(glow[0])
    services.change_tier(membership=membership, new_tier=annual, effective="next_cycle",
                         actor=services.Actor.system(), idempotency_key="to-yearly", now=membership.started_at)
    membership.refresh_from_db()
    assert membership.pending_tier_id == annual.pk
