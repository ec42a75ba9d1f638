"""The join page's periodic job (django-q2, hourly; listed in medspa/schedules.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from integrations.models import InboundEvent, InboundStatus
from integrations.processors.square_checkout import close_abandoned_links
from memberships.models import JoinAttempt
from memberships.services.joining import purge_abandoned_joins

logger = logging.getLogger(__name__)


def purge_abandoned_joins_task() -> int:
    """Delete the details of joins abandoned before paying (older than JOIN_ATTEMPT_RETENTION_HOURS);
    a Square join's payment link first (it would never expire)."""
    now, older_than = timezone.now(), timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS)
    still_open = close_abandoned_links(before=now - older_than)
    paid = awaiting_confirmation(before=now - older_than)
    deleted = purge_abandoned_joins(now=now, older_than=older_than, keep=tuple(still_open) + paid)
    logger.info("join online: %s abandoned joins purged", deleted)
    return deleted


def awaiting_confirmation(*, before) -> tuple[int, ...]:
    """Joins the processor says were paid whose confirmation is not processed yet — it waits, or it
    failed and waits for a manager (the person already had a membership, say): not abandoned. Their
    details and signed agreement stay until the confirmation goes through. Stripe's checkout
    session names the join (`client_reference_id`, `metadata.join_ref`)."""
    refs = list(JoinAttempt.objects.filter(created_at__lt=before).values_list("ref", flat=True))
    if not refs:
        return ()
    named = (InboundEvent.objects.filter(status__in=[InboundStatus.RECEIVED, InboundStatus.FAILED])
             .filter(Q(payload__data__object__client_reference_id__in=refs)
                     | Q(payload__data__object__metadata__join_ref__in=refs))
             .values_list("payload__data__object__client_reference_id", "payload__data__object__metadata__join_ref"))
    mentioned = {ref for pair in named for ref in pair if ref}
    return tuple(JoinAttempt.objects.filter(ref__in=mentioned).values_list("pk", flat=True))
