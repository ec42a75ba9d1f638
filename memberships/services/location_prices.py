"""One catalogue, prices per location: a tier version may carry a location's own price
(`TierLocationPrice`). A membership pays the price of the location it was priced at
(`Membership.price_location`, fixed at enrollment and at each tier change from the member's home
location), else the tier's. Moving home changes nothing until the next tier change."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from memberships.models import Member, Membership, Tier, TierLocationPrice


@dataclass(frozen=True)
class Price:
    cents: int
    currency: str
    interval: str
    location_id: int | None          # the location whose own price it is; None: the tier's price

    @property
    def display(self) -> str:
        return f"${self.cents / 100:,.2f}/{self.interval}"


def price_of(tier: Tier, location_id: int | None) -> Price:
    """The tier's price at a location: the location's own when it has one, else the tier's."""
    if location_id is not None:
        own = TierLocationPrice.objects.filter(tier=tier, location_id=location_id).values_list("price_cents", flat=True)
        for cents in own:
            return Price(cents=cents, currency=tier.currency, interval=tier.interval, location_id=location_id)
    return Price(cents=tier.price_cents, currency=tier.currency, interval=tier.interval, location_id=None)


def pricing_location(*, member: Member, tier: Tier) -> int | None:
    """Whose price a member pays for `tier` from now (enrollment, tier change): the id of their home
    location when it has its own price for the tier; else None (the tier's price). No query for a
    member without a home location."""
    if member.home_location_id and TierLocationPrice.objects.filter(tier=tier, location_id=member.home_location_id) \
            .exists():
        return member.home_location_id
    return None


def change_pricing_location(*, membership: Membership, tier: Tier, effective: str) -> int | None:
    """Whose price the membership pays after a change to `tier` ("now" or "next_cycle"). One
    `price_location` prices both the current tier and the one scheduled: a change at the renewal moves
    it to the member's home location only when that leaves the current tier's price (paid until then,
    and kept if the change is withdrawn) as it is; else the new tier is priced where the membership is
    priced now."""
    home = pricing_location(member=membership.member, tier=tier)
    if effective == "now" or home == membership.price_location_id:
        return home
    if price_of(membership.tier, home).cents == price_of(membership.tier, membership.price_location_id).cents:
        return home
    return membership.price_location_id


def membership_price(membership: Membership, *, tier: Tier | None = None) -> Price:
    """What the membership pays for its tier (or `tier`, e.g. the pending one) where it was priced."""
    return price_of(tier or membership.tier, membership.price_location_id)


def location_prices(tiers: list[Tier]) -> dict[tuple[int, int], int]:
    """(tier id, location id) → price in cents, for many tiers in one query."""
    return {(t, loc): cents for t, loc, cents in TierLocationPrice.objects.filter(tier__in=tiers)
            .values_list("tier_id", "location_id", "price_cents")}


def paid_price_expression(tier_field: str = "tier", membership_path: str = ""):
    """What a membership pays for `tier_field` ("tier" or "pending_tier"), as an expression for
    `annotate()` on memberships (`membership_path` leads to the membership): its pricing location's own
    price for that tier, else the tier's. Set-based: a subquery, no query per membership."""
    own = TierLocationPrice.objects.filter(tier_id=OuterRef(f"{membership_path}{tier_field}_id"),
                                           location_id=OuterRef(f"{membership_path}price_location_id"))
    return Coalesce(Subquery(own.values("price_cents")[:1]), F(f"{membership_path}{tier_field}__price_cents"))
