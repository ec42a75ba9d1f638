"""Payback metrics, week by week: what the ledger saves the practice once it is switched on.

- failed payments addressed, and how fast (dunning cases opened, closed, median hours to close);
- time spent on reconciliation (discrepancies opened, resolved, median hours to resolve);
- entitlement disputes (reversals marked as disputes);
- tier-change billing errors (price mismatches found by reconciliation).
Reads only."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from billing.models import Discrepancy, DiscrepancyKind, DunningCase
from memberships.models import EntryKind, LedgerEntry


@dataclass(frozen=True)
class PaybackWeek:
    week_start: datetime
    failed_payments: int
    failed_addressed: int
    failed_recovered: int
    hours_to_address: float | None       # median, for the cases closed that week
    discrepancies_found: int
    discrepancies_resolved: int
    hours_to_resolve: float | None
    disputes: int
    tier_billing_errors: int


def _median_hours(deltas: list[timedelta]) -> float | None:
    return round(statistics.median(d.total_seconds() / 3600 for d in deltas), 1) if deltas else None


def payback_weeks(*, practice_id: int, now: datetime, weeks: int = 8) -> list[PaybackWeek]:
    """The last `weeks` weeks (Monday to Monday, in `now`'s time zone), oldest first."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    since, until = starts[0], monday + timedelta(weeks=1)

    def week_of(moment: datetime | None) -> int | None:
        if moment is None or not (since <= moment < until):
            return None
        return int((moment - since) // timedelta(weeks=1))

    rows = [dict(failed=0, addressed=0, recovered=0, address_times=[], found=0, resolved=0, resolve_times=[],
                 disputes=0, price=0) for _ in starts]
    cases = DunningCase.objects.filter(practice_id=practice_id).filter(
        Q(opened_at__gte=since, opened_at__lt=until) | Q(closed_at__gte=since, closed_at__lt=until))
    for opened, closed, status in cases.values_list("opened_at", "closed_at", "status"):
        if (w := week_of(opened)) is not None:
            rows[w]["failed"] += 1
        if (w := week_of(closed)) is not None:
            rows[w]["addressed"] += 1
            rows[w]["recovered"] += status == "recovered"
            rows[w]["address_times"].append(closed - opened)
    found = Discrepancy.objects.filter(practice_id=practice_id).filter(
        Q(first_seen_at__gte=since, first_seen_at__lt=until) | Q(resolved_at__gte=since, resolved_at__lt=until))
    for first, resolved, kind in found.values_list("first_seen_at", "resolved_at", "kind"):
        if (w := week_of(first)) is not None:
            rows[w]["found"] += 1
            rows[w]["price"] += kind == DiscrepancyKind.PRICE_MISMATCH
        if (w := week_of(resolved)) is not None:
            rows[w]["resolved"] += 1
            rows[w]["resolve_times"].append(resolved - first)
    disputes = LedgerEntry.objects.filter(membership__member__practice_id=practice_id, kind=EntryKind.REVERSE,
                                          dispute=True, created_at__gte=since, created_at__lt=until)
    for created in disputes.values_list("created_at", flat=True):
        if (w := week_of(created)) is not None:
            rows[w]["disputes"] += 1
    return [
        PaybackWeek(week_start=start, failed_payments=r["failed"], failed_addressed=r["addressed"],
                    failed_recovered=r["recovered"], hours_to_address=_median_hours(r["address_times"]),
                    discrepancies_found=r["found"], discrepancies_resolved=r["resolved"],
                    hours_to_resolve=_median_hours(r["resolve_times"]), disputes=r["disputes"],
                    tier_billing_errors=r["price"])
        for start, r in zip(starts, rows)
    ]
