"""django-q2 tasks: thin, take ids, read the clock once."""

from __future__ import annotations

from django.utils import timezone


def run_import(batch_id: int) -> str:
    from billing.mirror import run_import_batch

    return run_import_batch(batch_id=batch_id, now=timezone.now()).status


def reconcile_nightly() -> dict:
    """The nightly schedule: one run per practice (catch-up off; a missed night is simply the next run)."""
    from billing.mirror.runs import run_reconciliation
    from memberships.models import Practice

    now = timezone.now()
    return {p.slug: run_reconciliation(practice=p, now=now, trigger="schedule").total
            for p in Practice.objects.order_by("id")}


def reconcile_practice(practice_id: int) -> int:
    from billing.mirror.runs import run_reconciliation
    from memberships.models import Practice

    practice = Practice.objects.get(pk=practice_id)
    return run_reconciliation(practice=practice, now=timezone.now(), trigger="page").total
