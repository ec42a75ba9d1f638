"""django-q2 tasks of the record side. Each takes ids, reads the clock once, and is safe to run twice.
Record webhooks left `received` (a lost task, the record down) are picked up by the inbox's own
periodic sweep (`integrations.tasks.process_inbound_backlog`), which hands them to
`records.inbound.apply_inbound_row`."""

from __future__ import annotations

from django.utils import timezone

from .inbound import process_inbound_event


def process_record_event(inbound_id: int) -> str:
    return process_inbound_event(inbound_id=inbound_id, now=timezone.now())
