"""The join page's periodic job (django-q2, hourly; listed in medspa/schedules.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from integrations.processors.join_retention import close_abandoned_checkouts
from memberships.services.joining import purge_abandoned_joins

logger = logging.getLogger(__name__)


def purge_abandoned_joins_task() -> int:
    """Delete the details of joins abandoned before paying (older than JOIN_ATTEMPT_RETENTION_HOURS).
    A join paid at the processor whose confirmation is not processed yet (it waits, or it failed and
    waits for a manager) is kept, with what the person signed; a hosted page the processor does not
    expire is closed before its join goes."""
    now, older_than = timezone.now(), timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS)
    keep = close_abandoned_checkouts(before=now - older_than)
    deleted = purge_abandoned_joins(now=now, older_than=older_than, keep=keep)
    logger.info("join online: %s abandoned joins purged", deleted)
    return deleted
