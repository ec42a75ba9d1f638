"""Members and monthly recurring revenue by tier, month by month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, Q

from memberships.models import BillingInterval, Event, EventKind, Membership, MembershipStatus, Tier, TierLocationPrice

from .months import aware, for_practice, month_starts, next_month


def monthly_price_cents(tier: Tier, cents: int | None = None) -> int:
    """The tier's price (or `cents`, e.g. a location's own price for it) per month."""
    cents = tier.price_cents if cents is None else cents
    return cents // 12 if tier.interval == BillingInterval.YEAR else cents


@dataclass
class TierSeries:
    tier_id: int
    name: str
    members: list[int]
    mrr_cents: list[int]


@dataclass
class MembersOverTime:
    months: list[date]
    tiers: list[TierSeries]

    @property
    def total_members(self) -> list[int]:
        return [sum(t.members[i] for t in self.tiers) for i in range(len(self.months))]

    @property
    def total_mrr_cents(self) -> list[int]:
        return [sum(t.mrr_cents[i] for t in self.tiers) for i in range(len(self.months))]


def members_by_tier_over_time(*, practice_id: int | None, now: datetime, months: int = 12) -> MembersOverTime:
    """Members counted at each month's end (this month: now) and the monthly recurring revenue their
    prices make (what each membership pays: its pricing location's own price for the tier, else the
    tier's). A membership counts from its start until it is cancelled, except one still
    pending its first payment; for the current month its real status decides (active or past due).
    Tier changes are replayed from the TIER_CHANGED events, so a member counts under the tier they
    had then. Pauses in past months are not replayed (a paused member counts only this month as not
    active). One grouped query per the membership table (by tier and pricing location), one for the
    location prices, one for the tier changes (each replayed at the prices its event names)."""
    starts = month_starts(now=now, months=months)
    ends = [min(aware(next_month(s)), now) for s in starts]
    memberships = for_practice(Membership.objects.all(), practice_id, "member__practice_id")
    memberships = memberships.exclude(status=MembershipStatus.PENDING)
    aggregates = {}
    for i, end in enumerate(ends):
        alive = Q(started_at__lte=end) & (Q(cancelled_at__isnull=True) | Q(cancelled_at__gt=end))
        if i == len(ends) - 1:
            alive &= Q(status__in=[MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE])
        aggregates[f"m{i}"] = Count("id", filter=alive)
    counts: dict[int, list[int]] = {}
    by_location: list[tuple[int, int | None, list[int]]] = []
    for row in memberships.values("tier_id", "price_location_id").annotate(**aggregates).order_by():
        members = [row[f"m{i}"] for i in range(len(ends))]
        by_location.append((row["tier_id"], row["price_location_id"], members))
        counts[row["tier_id"]] = [a + b for a, b in zip(counts.get(row["tier_id"], [0] * len(ends)), members)]
    replayed: list[tuple[int, int, int, int | None, int | None]] = []     # month, old, new, old/new cents
    # Replay tier changes: before a change the member was on the old tier.
    changes = for_practice(Event.objects.filter(kind=EventKind.TIER_CHANGED, created_at__gt=aware(starts[0])),
                           practice_id, "practice_id")
    changes = list(changes.values("membership_id", "created_at", "payload"))
    if changes:
        spans = {m["id"]: m for m in Membership.objects.filter(pk__in={c["membership_id"] for c in changes})
                 .values("id", "started_at", "cancelled_at", "status")}
        for change in changes:
            old, new = change["payload"].get("old_tier_id"), change["payload"].get("new_tier_id")
            span = spans.get(change["membership_id"])
            if not old or not new or span is None or span["status"] == MembershipStatus.PENDING:
                continue
            for i, end in enumerate(ends):
                alive = span["started_at"] <= end and (span["cancelled_at"] is None or span["cancelled_at"] > end)
                if end < change["created_at"] and alive and i < len(ends) - 1:
                    counts.setdefault(new, [0] * len(ends))[i] -= 1
                    counts.setdefault(old, [0] * len(ends))[i] += 1
                    replayed.append((i, old, new, change["payload"].get("old_price_cents"),
                                     change["payload"].get("price_cents")))
    tiers = {t.pk: t for t in Tier.objects.filter(pk__in=counts.keys())}
    revenue = _revenue(tiers, by_location, replayed, len(ends))
    series = []
    for tier_id, members in sorted(counts.items(), key=lambda kv: (tiers[kv[0]].rank, tiers[kv[0]].name)):
        if not any(members):
            continue
        mrr = revenue.get(tier_id, [0] * len(ends))
        series.append(TierSeries(tier_id=tier_id, name=str(tiers[tier_id]), members=[max(n, 0) for n in members],
                                 mrr_cents=[max(c, 0) if n > 0 else 0 for n, c in zip(members, mrr)]))
    return MembersOverTime(months=starts, tiers=series)


def _revenue(tiers: dict[int, Tier], by_location: list[tuple[int, int | None, list[int]]],
             replayed: list[tuple[int, int, int, int | None, int | None]], n: int) -> dict[int, list[int]]:
    """Tier id → cents per month, at the prices its memberships pay (one query for the location
    prices), tier changes replayed at the prices their events name."""
    locations = {loc for _, loc, _ in by_location if loc is not None}
    own_prices = {(t, loc): cents for t, loc, cents in TierLocationPrice.objects.filter(
        location_id__in=locations).values_list("tier_id", "location_id", "price_cents")} if locations else {}
    revenue: dict[int, list[int]] = {}
    for tier_id, location_id, members in by_location:
        price = monthly_price_cents(tiers[tier_id], own_prices.get((tier_id, location_id)))
        revenue[tier_id] = [a + count * price for a, count in zip(revenue.get(tier_id, [0] * n), members)]
    for i, old, new, old_cents, new_cents in replayed:
        if old in tiers and new in tiers:
            revenue.setdefault(new, [0] * n)[i] -= monthly_price_cents(tiers[new], new_cents)
            revenue.setdefault(old, [0] * n)[i] += monthly_price_cents(tiers[old], old_cents)
    return revenue
