"""django-q2 tasks of the member page (they take ids and read the clock once)."""

from __future__ import annotations

import logging

from django.utils import timezone

from . import links

logger = logging.getLogger(__name__)


def send_member_links(request_id: int) -> int:
    return len(links.send_links(request_id=request_id, now=timezone.now()))


def purge_old_member_links() -> int:
    """Daily (medspa/schedules.py): link requests and links past MEMBER_LINK_RETENTION_DAYS deleted.
    Logs the counts only."""
    gone_links, gone_requests = links.purge_old_links(now=timezone.now())
    logger.info("member page retention: %d links and %d link requests deleted", gone_links, gone_requests)
    return gone_links + gone_requests
