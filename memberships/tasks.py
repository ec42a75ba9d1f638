"""The ledger's periodic job (django-q2 schedule, hourly; each run computes what is due now)."""

from __future__ import annotations

import logging

from django.utils import timezone

from memberships.failures import log_failure

from . import services

logger = logging.getLogger(__name__)


def ledger_housekeeping() -> dict[str, int | str]:
    """Resume pauses whose end date has come; expire frozen credit whose paid period has ended. Each
    membership is done on its own; the two jobs too (one that raises does not stop the other)."""
    now = timezone.now()
    results: dict[str, int | str] = {}
    for name, job in (("resumed", services.resume_due_pauses), ("frozen_expired", services.expire_due_frozen_balances)):
        try:
            results[name] = job(now=now)
        except Exception as exc:
            log_failure(logger, "ledger housekeeping: %s failed; the other job goes on", name, exc=exc)
            results[name] = "failed"
    return results
