"""Processor and record payloads are kept whole for INBOX_RETENTION_DAYS (default 400: a year of
disputes and reconciliation, and a renewal's anniversary), then reduced to ids and outcome: the
row keeps its source, event id and type, status, error, attempts and times, and the
payload becomes `{"reduced": "ids and outcome", "id", "object", "appointment"}` (the event's,
its object's and the record appointment's ids). Only events that are done (processed, ignored, failed) are reduced; one still
waiting is work, not history. Set-based: one UPDATE per batch of ids, each its own transaction
(`memberships.batches.in_batches`, which the other retention jobs use too)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Value
from django.db.models.fields.json import KT
from django.db.models.functions import JSONObject

from memberships.batches import in_batches

from .models import InboundEvent, InboundStatus

DONE = (InboundStatus.PROCESSED, InboundStatus.IGNORED, InboundStatus.FAILED)


def retention_days() -> int:
    return int(getattr(settings, "INBOX_RETENTION_DAYS", 400))


def reduce_old_payloads(*, now: datetime, batch_size: int = 1000, max_batches: int | None = None) -> int:
    """Reduce every done event received more than INBOX_RETENTION_DAYS before `now`; returns how
    many rows were reduced. Safe to run twice (a reduced row is not taken again)."""
    cutoff = now - timedelta(days=retention_days())
    due = (InboundEvent.objects.filter(status__in=DONE, received_at__lt=cutoff, reduced_at__isnull=True)
           .order_by("pk").values_list("pk", flat=True))
    reduced = JSONObject(reduced=Value("ids and outcome"), id=KT("payload__id"), object=KT("payload__data__object__id"),
                         appointment=KT("payload__data__appointment_id"))
    return in_batches(due, lambda ids: InboundEvent.objects.filter(pk__in=ids, reduced_at__isnull=True).update(
        payload=reduced, reduced_at=now), batch_size=batch_size, max_batches=max_batches)
