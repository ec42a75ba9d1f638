"""A tier change "now" at a Square practice: Square swaps a plan only at the end of the current cycle
(`SwapPlan` schedules a SWAP_PLAN action; one pending at a time) and prorates nothing, so an
immediate change is the current subscription cancelled and a new one on the new plan (VENDORS.md,
"Square"). What Square allows, and what this does:

- `CancelSubscription` ends the subscription at the end of the period already paid (its
  `charged_through_date` becomes `canceled_date`); Square refunds nothing of it;
- the new subscription (`CreateSubscription` on the new plan variation, the same customer and card)
  starts that same day (`start_date`; today when nothing is paid ahead), so its first invoice is
  the first one at the new price and the ledger's next cycle is paid at the new price — the rest of
  the month is neither charged again nor credited, as Stripe's `proration_behavior: none` does;
- idempotent on the outbox's retries: the new subscription is searched for first (live, on the new
  plan, not itself ending) and created with a key from our ids, the cancellation is skipped when the
  old one already ends, and the membership takes the new id in one conditional update;
- a change "at the next cycle" asked of a subscription that has not started (a "now" change's new
  subscription still waiting for its start date, PENDING) is a replacement too: SwapPlan would apply
  only after its first cycle, so the first month would be billed at the old price while the ledger
  grants the new tier; the not-started one is cancelled before it bills and the new one starts on
  the same start date;
- "today" is the day where the subscription's dates are (its own `timezone`), not UTC's;
- the old subscription stays known as this membership's (`ProcessorSubscription`), so the events it
  still sends (its end) find the membership and change nothing: billing cancels a membership only
  for the subscription the membership is on."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from billing.models import ProcessorSubscription
from memberships.models import Membership, MembershipStatus

from .square import refuse_ended
from .square_events import our_status, zone_of

_LIVE = ("ACTIVE", "PENDING", "PAUSED")


def _replacement(processor, *, customer_ref: str, price_ref: str, old_ref: str) -> dict | None:
    found = processor._call(processor.client.subscriptions.search, query={"filter": {
        "customer_ids": [customer_ref], "location_ids": [processor.location_id]}})
    for sub in found.get("subscriptions") or []:
        if (sub.get("id") != old_ref and sub.get("status") in _LIVE and not sub.get("canceled_date")
                and sub.get("plan_variation_id") == price_ref):
            return sub
    return None


def _keep_old_known(membership: Membership, old: dict) -> None:
    ProcessorSubscription.objects.get_or_create(
        processor="square", processor_subscription_id=str(old["id"]),
        defaults={"membership": membership, "processor_customer_id": str(old.get("customer_id") or ""),
                  "status": our_status(old.get("status")), "price_ref": str(old.get("plan_variation_id") or ""),
                  "cancel_at_period_end": True, "updated_at": membership.updated_at})


def square_today(sub: dict, now: datetime, *, fallback=None) -> date:
    """The day it is where the subscription's dates are: its own `timezone` (Square sets the
    location's), else `fallback` (the practice's zone). A UTC day is tomorrow from 16:00 on the west
    coast, so a late-evening change would start the new subscription a day late."""
    zone = zone_of(sub.get("timezone")) if sub.get("timezone") else (fallback or zone_of(None))
    return now.astimezone(zone).date()


def not_started(sub: dict, *, today: date) -> bool:
    """A subscription whose first cycle has not begun (PENDING, or a start date still ahead): Square
    swaps a plan only at the end of a cycle, so a swap asked of it would apply after the first cycle,
    billed at the old price."""
    return sub.get("status") == "PENDING" or (sub.get("start_date") or "") > today.isoformat()


def current(processor, subscription_ref: str) -> dict:
    return processor._call(processor.client.subscriptions.get, subscription_id=subscription_ref,
                           include="actions")["subscription"]


def replace_subscription(processor, membership: Membership, *, membership_ref: str, price_ref: str,
                         today: date | None = None, now: datetime | None = None, old: dict | None = None) -> dict:
    """Cancel the membership's Square subscription at the end of its paid period (a not-started one:
    on its start date, before it bills) and start a new one on `price_ref` that day. `today` is the
    day where the subscription's dates are, taken from `now` in its own time zone when not given.
    Returns what was done (the delivery's result)."""
    old_ref = membership.processor_subscription_id
    if old is None:
        old = current(processor, old_ref)
    if today is None:
        today = square_today(old, now, fallback=membership.member.practice.zone)
    if old.get("plan_variation_id") == price_ref and not old.get("canceled_date"):
        return {"subscription": old_ref, "unchanged": True}
    refuse_ended(old)
    # paid up to (a subscription not started yet — an earlier change's — starts on its start date)
    through = old.get("charged_through_date") or (old.get("start_date") if old.get("status") == "PENDING" else "")
    starts = max(through, today.isoformat()) if through else today.isoformat()
    if membership.status == MembershipStatus.PAUSED:
        # A paused member's new subscription must not charge on creation: CreateSubscription with a card
        # "charges the card" and "starts immediately, unless the request includes the optional
        # start_date" — and a subscription Square has paused is charged through only to its pause, so
        # "that day" would be today. It starts tomorrow at the earliest (PENDING, nothing charged) and
        # the pause that follows the change (`sync.sync_tier`) is set for its start date.
        starts = max(starts, (today + timedelta(days=1)).isoformat())
    new = _replacement(processor, customer_ref=str(old["customer_id"]), price_ref=price_ref, old_ref=old_ref)
    if new is None:
        params = {"location_id": processor.location_id, "customer_id": old["customer_id"],
                  "plan_variation_id": price_ref, "start_date": starts,
                  "idempotency_key": f"square-replace:{membership_ref}:{old_ref}:{price_ref}"}
        card = old.get("card_id") or processor.default_payment_method(customer_ref=str(old["customer_id"]))
        if card:
            params["card_id"] = card
        new = processor._call(processor.client.subscriptions.create, **params)["subscription"]
    for action in old.get("actions") or []:
        if action.get("type") == "SWAP_PLAN":            # a scheduled change is superseded
            processor._call(processor.client.subscriptions.delete_action, subscription_id=old_ref,
                            action_id=action["id"])
    if not old.get("canceled_date"):
        processor._call(processor.client.subscriptions.cancel, subscription_id=old_ref)
    _keep_old_known(membership, old)
    Membership.objects.filter(pk=membership.pk, processor_subscription_id=old_ref).update(
        processor_subscription_id=new["id"])
    membership.processor_subscription_id = new["id"]
    return {"subscription": new["id"], "replaced": old_ref, "starts": new.get("start_date") or starts,
            "old_ends": through or today.isoformat()}
