"""django-q2 tasks of the edges. Each reads the clock once and is safe to run twice."""

from __future__ import annotations

from django.utils import timezone

from . import outbox


def dispatch_deliveries() -> dict[str, int]:
    """Deliver everything due, in batches, until nothing is due now."""
    now = timezone.now()
    total: dict[str, int] = {}
    while True:
        counts = outbox.dispatch_due(now=now)
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
        if not counts:
            return total
