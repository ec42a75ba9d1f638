"""Square's stored events as the inbox reads them: `square_events.parse_event`, with the length of
the cycle an invoice bills taken from the ledger. Square's invoice carries its due date (the cycle's
start) but not the plan's cadence, so a yearly tier's invoice would read as a month: the tier the
ledger sold on that subscription says whether the cycle is a month or a year. One read of the
membership (no call to Square), made again at every attempt, so an event heard of before its
membership exists is read right once it does."""

from __future__ import annotations

from datetime import datetime

from memberships.models import Membership

from .base import InboundFact
from .square_events import parse_event


def tier_interval(subscription_ref: str, period_start: datetime) -> str:
    """The billing interval of the tier the invoice's cycle is billed at: the scheduled tier's for a
    cycle starting at or after the current period's end (Square swaps the plan at the cycle's end),
    else the membership's tier's; "" for a subscription the ledger does not know (yet)."""
    row = (Membership.objects.filter(processor_subscription_id=subscription_ref)
           .values("tier__interval", "pending_tier__interval", "current_period_end").order_by("-pk").first())
    if row is None:
        return ""
    if row["pending_tier__interval"] and row["current_period_end"] and period_start >= row["current_period_end"]:
        return row["pending_tier__interval"]
    return row["tier__interval"] or ""


def parse_stored(payload) -> InboundFact:
    return parse_event(payload, interval_of=tier_interval)
