"""The inbox's front door: each verified webhook is stored once (one `INSERT … ON CONFLICT DO
NOTHING`, unique on source + event id) and its processing queued; the request answers at once.
`integrations.inbox` processes what is stored."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from .due import backoff
from .models import InboundEvent, InboundStatus

logger = logging.getLogger(__name__)

SOURCE_STRIPE = "stripe"
RECORD_SOURCE_PREFIX = "record:"

# A NUL character (the JSON escape \u0000 not itself escaped, or a raw NUL byte): PostgreSQL's jsonb
# cannot store it, so such a body is refused before it is stored.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000|\x00")


def has_nul(body: bytes) -> bool:
    # Two substring scans (memchr-fast) settle almost every body; the regex only decides whether a
    # "\u0000" that is there is escaped itself.
    if b"\x00" in body:
        return True
    return b"\\u0000" in body and _NUL.search(body) is not None


def store_event(*, source: str, event: dict, handled: bool, now: datetime, raw: bytes | None = None
                ) -> tuple[int | None, bool]:
    """Insert the event once: one statement (`ON CONFLICT DO NOTHING`), one commit. Returns (row id,
    created); a duplicate returns (None, False). Unknown types are stored already `ignored`. `raw`:
    the verified body, stored as is (no re-serialization). Processing is queued after the commit."""
    table = InboundEvent._meta.db_table
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    payload = raw.decode("utf-8") if raw is not None else json.dumps(event)
    status = InboundStatus.RECEIVED if handled else InboundStatus.IGNORED
    # One statement, committed on its own (autocommit): the request's only round trip that counts.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (source, event_id, event_type, payload, status, error, attempts, "
            f"object_created, received_at, processed_at, next_attempt_at, practice_id) "
            f"VALUES (%s, %s, %s, %s{'::jsonb' if postgres else ''}, %s, '', 0, %s, %s, %s, NULL, NULL) "
            f"ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
            [source, str(event["id"])[:200], str(event["type"])[:100], payload, status,
             int(event.get("created") or 0) or None, adapt(now), None if handled else adapt(now)],
        )
        row = cursor.fetchone()
    if row is None:
        return None, False
    inbound_id = row[0]
    if handled:
        # Runs at once in autocommit; inside a caller's transaction, after it commits.
        transaction.on_commit(lambda: trigger_processing(inbound_id))
    return inbound_id, True


_last_trigger = 0.0


def trigger_processing(inbound_id: int) -> None:
    """Queue the processing of a stored event on django-q2. With INBOX_TRIGGER_SECONDS > 0 the
    tasks are coalesced: a web process queues one backlog drain at most that often, and a drain
    re-checks that long after it found nothing, so an event committed after a drain started always
    meets a later check (and the minute sweep stays as the safety net). 0: one task per event."""
    global _last_trigger
    from django_q.tasks import async_task

    interval = settings.INBOX_TRIGGER_SECONDS
    try:
        if interval <= 0:
            async_task("integrations.tasks.process_inbound_event", inbound_id, group="inbox")
            return
        clock = time.monotonic()
        if clock - _last_trigger < interval:
            return
        _last_trigger = clock
        async_task("integrations.tasks.process_inbound_backlog", group="inbox")
    except Exception:  # the stored row is the record of due work: the periodic sweep finds it
        logger.exception("could not queue inbound event %s; the sweep will process it", inbound_id)


def retry_delay(attempts: int) -> timedelta:
    """How long an event that waits (its membership unknown yet, a peer down) waits this time."""
    return backoff(attempts, base=settings.INBOX_RETRY_BASE_SECONDS, cap=settings.INBOX_RETRY_MAX_SECONDS)
