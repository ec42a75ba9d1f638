"""The join page's periodic job (django-q2, hourly; listed in medspa/schedules.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from memberships.services.joining import purge_abandoned_joins

logger = logging.getLogger(__name__)


def purge_abandoned_joins_task() -> int:
    """Delete the details of joins abandoned before paying (older than JOIN_ATTEMPT_RETENTION_HOURS)."""
    deleted = purge_abandoned_joins(now=timezone.now(), older_than=timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS))
    logger.info("join online: %s abandoned joins purged", deleted)
    return deleted
