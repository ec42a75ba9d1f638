"""A paused member at a Square practice, as Square's reference words its calls:

- CreateSubscription: "If you provide a card on file in the request, Square charges the card for the
  subscription … The subscription starts immediately, unless the request includes the optional
  `start_date`";
- PauseSubscription's `pause_effective_date`: "When this date is unspecified or falls within the current
  billing cycle, the subscription is paused on the starting date of the next billing cycle";
- a subscription Square has paused stays charged through the day its pause began.

So when the desk moves a member whose subscription Square has already paused to another tier "now",
the subscription that replaces it must not start (and charge) that day: it waits, not started, and is
paused on its own start date, said explicitly; when the member comes back, it bills from then at the
new price."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from memberships.models import MembershipStatus

from .test_square_cards import on_square, square_env, square_fake, square_fake_class, subscribed  # noqa: F401
from .test_square_tier_change import luxe, paid_month, settle  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_a_member_paused_at_square_moved_to_another_tier_now_is_not_charged_until_she_is_back(
        client, front_desk, paid_month, luxe, square_fake):  # noqa: F811
    from memberships import services

    member, membership, old_id = paid_month
    now = timezone.now()
    services.pause_membership(membership=membership, until=(now + timedelta(days=90)).date(),
                              actor=services.Actor.staff(front_desk), idempotency_key="pause", now=now)
    settle(now)
    through = square_fake.subscriptions[old_id]["charged_through_date"]
    square_fake.apply_due_actions(today=date.fromisoformat(through))
    assert square_fake.subscriptions[old_id]["status"] == "PAUSED"          # Square paused it at the month's end

    later = now + timedelta(days=40)                                           # well into the pause
    square_fake.now = later
    invoices = len(square_fake.invoices)
    membership.refresh_from_db()
    services.change_tier(membership=membership, new_tier=luxe, effective="now",
                         actor=services.Actor.staff(front_desk), idempotency_key="change", now=later)
    settle(later)
    membership.refresh_from_db()
    new = square_fake.subscriptions[membership.processor_subscription_id]
    assert membership.status == MembershipStatus.PAUSED and new["id"] != old_id
    assert len(square_fake.invoices) == invoices                               # nothing charged while paused
    assert new["status"] == "PENDING" and new["start_date"] > later.date().isoformat()
    assert [(a["type"], a["effective_date"]) for a in square_fake._actions[new["id"]]] == [
        ("PAUSE", new["start_date"])]
    pause_call = [b for m, p, b in square_fake.requests if p == f"/v2/subscriptions/{new['id']}/pause"]
    assert pause_call == [{"pause_effective_date": new["start_date"]}]

    # She comes back before that day: the pause is called off and Square bills the new price from then.
    services.resume_membership(membership=membership, actor=services.Actor.staff(front_desk),
                               idempotency_key="back", now=later)
    settle(later)
    assert square_fake._actions[new["id"]] == []
    square_fake.now = later + timedelta(days=1)
    first = square_fake.bill(new["id"])
    assert square_fake.invoices[first]["payment_requests"][0]["computed_amount_money"]["amount"] == 34900
