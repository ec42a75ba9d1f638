"""Reads for the reconciliation pages, the rollout page and the dashboard. They never write."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet

from billing.models import Discrepancy, DiscrepancyKind, ReconciliationRun


def latest_run(*, practice_id: int) -> ReconciliationRun | None:
    return ReconciliationRun.objects.filter(practice_id=practice_id, finished_at__isnull=False).first()


def discrepancies(*, practice_id: int, show: str = "open", kind: str = "") -> QuerySet[Discrepancy]:
    """open: found by the latest run and not resolved; resolved; all: everything the latest run found."""
    run = latest_run(practice_id=practice_id)
    rows = Discrepancy.objects.filter(practice_id=practice_id).select_related("member", "resolved_by")
    if show == "resolved":
        rows = rows.filter(resolved_at__isnull=False).order_by("-resolved_at")
    elif run is None:
        return rows.none()
    elif show == "all":
        rows = rows.filter(last_seen_run=run)
    else:
        rows = rows.filter(last_seen_run=run, resolved_at__isnull=True, gone_at__isnull=True)
    if kind:
        rows = rows.filter(kind=kind)
    return rows


@dataclass(frozen=True)
class TrendPoint:
    run_id: int
    at: datetime
    total: int                  # found by the run
    counts: dict[str, int]      # found, by kind
    open: int = 0               # of those, not resolved at the time of the run
    open_counts: dict[str, int] = field(default_factory=dict)


def reconciliation_trend(*, practice_id: int, limit: int = 30) -> list[TrendPoint]:
    """The last `limit` runs, oldest first: discrepancies found and still open at each run, by kind
    (for the trend charts). A discrepancy was there at a run between its first and last sighting; it
    was open then unless it had been resolved before. Two queries, whatever the number of runs."""
    runs = list(ReconciliationRun.objects.filter(practice_id=practice_id, finished_at__isnull=False)
                .order_by("-started_at", "-id")[:limit])[::-1]
    if not runs:
        return []
    seen = (Discrepancy.objects.filter(practice_id=practice_id, first_seen_at__lte=runs[-1].started_at,
                                       last_seen_at__gte=runs[0].started_at)
            .values_list("first_seen_at", "last_seen_at", "resolved_at", "kind"))
    open_counts = [dict.fromkeys(DiscrepancyKind.values, 0) for _ in runs]
    for first, last, resolved, kind in seen.iterator(chunk_size=2000):
        for i, run in enumerate(runs):
            if first <= run.started_at <= last and (resolved is None or resolved > run.started_at):
                open_counts[i][kind] = open_counts[i].get(kind, 0) + 1
    return [TrendPoint(run.pk, run.started_at, run.total, {k: run.counts.get(k, 0) for k in DiscrepancyKind.values},
                       sum(opened.values()), opened)
            for run, opened in zip(runs, open_counts)]


@dataclass(frozen=True)
class ReconciliationStatus:
    last_run_at: datetime | None
    sources: list[str]
    notes: list[str]
    found: int
    open: int
    resolved: int
    by_kind: dict[str, int]               # open discrepancies by kind, keyed by the kind's label

    @property
    def clean(self) -> bool:
        return self.last_run_at is not None and self.open == 0


def reconciliation_status(*, practice_id: int) -> ReconciliationStatus:
    run = latest_run(practice_id=practice_id)
    if run is None:
        return ReconciliationStatus(None, [], [], 0, 0, 0, {})
    seen = Discrepancy.objects.filter(practice_id=practice_id, last_seen_run=run)
    open_rows = seen.filter(resolved_at__isnull=True, gone_at__isnull=True)
    by_kind: dict[str, int] = {}
    for kind in open_rows.values_list("kind", flat=True):
        label = DiscrepancyKind(kind).label
        by_kind[label] = by_kind.get(label, 0) + 1
    return ReconciliationStatus(run.started_at, run.sources, run.notes, run.total, open_rows.count(),
                                seen.filter(~Q(resolved_at=None)).count(), by_kind)
