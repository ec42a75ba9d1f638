"""django-q2 tasks: thin, take ids, read the clock once."""

from __future__ import annotations

import logging

from django.utils import timezone

logger = logging.getLogger(__name__)


def run_import(batch_id: int) -> str:
    from billing.sheets.batches import run_import_batch

    return run_import_batch(batch_id=batch_id, now=timezone.now()).status


def reconcile_nightly() -> dict:
    """The nightly schedule: one run per practice (catch-up off; a missed night is simply the next run).
    A practice whose run raises is logged by its id and reported as "failed"; the others still run."""
    from billing.reconciliation.runs import run_reconciliation
    from memberships.failures import log_failure
    from memberships.models import Practice

    now = timezone.now()
    results: dict[str, int | str] = {}
    for practice in Practice.objects.order_by("id"):
        try:
            results[practice.slug] = run_reconciliation(practice=practice, now=now, trigger="schedule").total
        except Exception as exc:
            log_failure(logger, "nightly reconciliation of practice %s failed; the others go on", practice.pk,
                        exc=exc)
            results[practice.slug] = "failed"
    return results


def reconcile_practice(practice_id: int) -> int:
    from billing.reconciliation.runs import run_reconciliation
    from memberships.models import Practice

    practice = Practice.objects.get(pk=practice_id)
    return run_reconciliation(practice=practice, now=timezone.now(), trigger="page").total
