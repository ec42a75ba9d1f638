"""The join page's periodic job (django-q2, hourly; listed in medspa/schedules.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from integrations.processors.square_checkout import close_abandoned_links
from memberships.services.joining import purge_abandoned_joins

logger = logging.getLogger(__name__)


def purge_abandoned_joins_task() -> int:
    """Delete the details of joins abandoned before paying (older than JOIN_ATTEMPT_RETENTION_HOURS);
    a Square join's payment link first (it would never expire)."""
    now, older_than = timezone.now(), timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS)
    still_open = close_abandoned_links(before=now - older_than)
    deleted = purge_abandoned_joins(now=now, older_than=older_than, keep=still_open)
    logger.info("join online: %s abandoned joins purged", deleted)
    return deleted
