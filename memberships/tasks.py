"""The ledger's periodic job (django-q2 schedule, hourly; each run computes what is due now)."""

from __future__ import annotations

from django.utils import timezone

from . import services


def ledger_housekeeping() -> dict[str, int]:
    """Resume pauses whose end date has come; expire frozen credit whose paid period has ended."""
    now = timezone.now()
    return {
        "resumed": services.resume_due_pauses(now=now),
        "frozen_expired": services.expire_due_frozen_balances(now=now),
    }
