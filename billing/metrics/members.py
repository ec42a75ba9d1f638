"""Members and monthly recurring revenue by tier, month by month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, Q

from memberships.models import BillingInterval, Event, EventKind, Membership, MembershipStatus, Tier

from .months import aware, for_practice, month_starts, next_month


def monthly_price_cents(tier: Tier) -> int:
    return tier.price_cents // 12 if tier.interval == BillingInterval.YEAR else tier.price_cents


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
    tiers' prices make. A membership counts from its start until it is cancelled, except one still
    pending its first payment; for the current month its real status decides (active or past due).
    Tier changes are replayed from the TIER_CHANGED events, so a member counts under the tier they
    had then. Pauses in past months are not replayed (a paused member counts only this month as not
    active). One grouped query per the membership table, one for the tier changes."""
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
    for row in memberships.values("tier_id").annotate(**aggregates).order_by():
        counts[row["tier_id"]] = [row[f"m{i}"] for i in range(len(ends))]
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
    tiers = {t.pk: t for t in Tier.objects.filter(pk__in=counts.keys())}
    series = []
    for tier_id, members in sorted(counts.items(), key=lambda kv: (tiers[kv[0]].rank, tiers[kv[0]].name)):
        if not any(members):
            continue
        price = monthly_price_cents(tiers[tier_id])
        series.append(TierSeries(tier_id=tier_id, name=str(tiers[tier_id]), members=[max(n, 0) for n in members],
                                 mrr_cents=[max(n, 0) * price for n in members]))
    return MembersOverTime(months=starts, tiers=series)
