"""What the tier-change confirmation says about billing at a Square practice, in words (Stripe's
lines are `lifecycle._PRORATION`). Square swaps a plan only at the end of the paid cycle and prorates
nothing, so a change "now" is the subscription replaced: the current one ends when the month
already paid ends and a new one at the new price starts that day (the outbox's processor delivery,
`integrations.processors.square_tier_change`)."""

from __future__ import annotations

from memberships.models import AutomationStage
from memberships.services.location_prices import price_of, pricing_location
from memberships.services.stages import stage_at_least_for


def on_square(membership, *, syncing: bool = False) -> bool:
    """The membership's practice bills with Square (`syncing`: and the ledger changes its
    subscriptions there, the `tier_sync` stage)."""
    practice = membership.member.practice      # the stage: the member's home location's, else the practice's
    return practice.processor == "square" and (not syncing or stage_at_least_for(membership, AutomationStage.TIER_SYNC))


def square_billing(*, membership, new_tier, effective: str) -> str:
    price = price_of(new_tier, pricing_location(member=membership.member, tier=new_tier))   # at the home location
    ends = membership.current_period_end
    when = f" ({membership.member.practice.local_date(ends):%b %d, %Y})" if ends else ""   # the practice's day
    if effective == "now":
        return (f"Billing at Square: Square cannot change a price part-way through a paid month and does not "
                f"prorate, so the current subscription ends when the month already paid ends{when} and a new "
                f"one at {price.display} starts that day; nothing more is charged and nothing is "
                f"refunded for the rest of this month.")
    return (f"Billing at Square: the plan is swapped at the renewal{when}; Square keeps one scheduled swap, "
            f"so a later change replaces this one.")
