"""A tier as the join page words it: its price, and each benefit in the chart's words (the quantity
per cycle as `Service.format_quantity` writes it, the rollover rule as `TierBenefit.rollover_in_words`
does on the chart's rule column)."""

from __future__ import annotations

from dataclasses import dataclass

from memberships.models import BillingInterval, Tier


@dataclass(frozen=True)
class Offer:
    tier_id: int
    name: str
    price: str                      # "$199.00/month"
    benefits: list[str]             # "1 × HydraFacial per month; use it or lose it each cycle"


def _benefit_words(benefit, *, interval: str) -> str:
    service = benefit.service
    every = "per month" if interval == BillingInterval.MONTH else "per year"
    return f"{service.format_quantity(benefit.quantity_per_cycle)} × {service.name} {every}; {benefit.rollover_in_words}"


def tier_offers(tiers: list[Tier]) -> list[Offer]:
    """The page's offers (the tiers' benefits prefetched with their services)."""
    return [Offer(tier_id=t.pk, name=t.name, price=t.price_display,
                  benefits=[_benefit_words(b, interval=t.interval)
                            for b in sorted(t.benefits.all(), key=lambda b: b.service.name.lower())])
            for t in tiers]
