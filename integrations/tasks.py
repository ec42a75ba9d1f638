"""django-q2 tasks of the edges. Each reads the clock once and is safe to run twice.

The two drains (outbox deliveries, inbox events) work in batches, each its own transaction, and look
before each batch whether their cluster is stopping (`integrations.stopping`): then they return and
hand the rest back to the queue, so a stopping worker exits within seconds and loses nothing. Each
logs one line per sweep — counts and rate, no member data."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from . import outbox, stopping

logger = logging.getLogger(__name__)

# Deliveries taken per batch: each may wait on a peer (up to its HTTP timeout), and a stopping
# cluster waits for the batch in hand.
OUTBOX_BATCH = 25
# A stopping cluster runs the tasks it had already pulled, and its puller may still take one or two
# more before it stops: every drain task it runs then goes back to the queue, so the last one is
# never lost with it — at most this many times per task and worker process, which bounds the round
# trips if a stop ever stalled with the flag raised.
HAND_BACKS_PER_PROCESS = 3

_handed_back: dict[str, int] = {}


def _hand_back(func: str, *, group: str) -> bool:
    """Queue the drain again for whichever cluster is up next (another host's, or this one's after
    its restart)."""
    if _handed_back.get(func, 0) >= HAND_BACKS_PER_PROCESS:
        return False
    _handed_back[func] = _handed_back.get(func, 0) + 1
    from django_q.tasks import async_task

    try:
        async_task(func, group=group)
    except Exception:  # our tables are the record of due work: the minute sweep finds it
        logger.exception("could not hand %s back to the queue; the periodic sweep picks the work up", func)
        return False
    return True


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value


def _rate(handled: int, busy: float) -> str:
    return f"in {busy:.2f} s ({handled / busy:.0f}/s)" if busy > 0 else "in 0.00 s"


def dispatch_deliveries() -> dict[str, int]:
    """Deliver everything due, in batches, until nothing is due now (or the cluster is stopping)."""
    now = timezone.now()
    total: dict[str, int] = {}
    busy, stopped = 0.0, False
    while True:
        if stopping.stop_requested():
            stopped = True
            break
        started = time.perf_counter()
        counts = outbox.dispatch_due(now=now, limit=OUTBOX_BATCH)
        busy += time.perf_counter() - started
        _add(total, counts)
        if not counts:
            break
    handed = _hand_back("integrations.tasks.dispatch_deliveries", group="outbox") if stopped else False
    handled = sum(total.values())
    if handled:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(total.items()))
        logger.info("outbox sweep%s: %s %s%s", " stopped (the cluster is stopping)" if stopped else "", summary,
                    _rate(handled, busy), "; the rest handed back to the queue" if handed else "")
    elif stopped:
        logger.debug("outbox sweep not started: the cluster is stopping; handed back: %s", handed)
    return total


def process_inbound_event(inbound_id: int) -> str | None:
    """Process one stored webhook (no-op when another worker has it or it is done)."""
    from . import inbox

    return inbox.process_inbound(inbound_id, now=timezone.now())


def process_inbound_backlog() -> dict[str, int]:
    """Drain every received event that is due (queued by the webhook view, and every minute as the
    sweep for lost tasks and retries), one batch at a time. After finding nothing it looks once
    more INBOX_TRIGGER_SECONDS later (see `inbox.trigger_processing`). Stops after
    INBOX_SWEEP_SECONDS, well inside the cluster's timeout (the next run continues), and before the
    next batch when the cluster is stopping (the rest is handed back to the queue)."""
    from . import inbox

    deadline = time.monotonic() + settings.INBOX_SWEEP_SECONDS
    total: dict[str, int] = {}
    busy, rechecked, stopped = 0.0, False, False
    while time.monotonic() < deadline:
        if stopping.stop_requested():
            stopped = True
            break
        started = time.perf_counter()
        counts = inbox.process_due(now=timezone.now())
        busy += time.perf_counter() - started
        _add(total, counts)
        if counts:
            rechecked = False
            continue
        if rechecked or settings.INBOX_TRIGGER_SECONDS <= 0:
            break
        if stopping.sleep(settings.INBOX_TRIGGER_SECONDS + 0.2):
            stopped = True
            break
        rechecked = True
    handed = _hand_back("integrations.tasks.process_inbound_backlog", group="inbox") if stopped else False
    _log_inbox_sweep(total, busy=busy, stopped=stopped, handed=handed)
    return total


def _log_inbox_sweep(total: dict[str, int], *, busy: float, stopped: bool, handed: bool) -> None:
    """One line per sweep that did something: what it did, what is still waiting in the inbox
    (received, including events waiting with backoff) and how fast. Counts only."""
    from .models import InboundEvent, InboundStatus

    handled = sum(total.values())
    if not handled:                   # an idle re-check, or a task a stopping worker had pulled already
        if stopped:
            logger.debug("inbox sweep not started: the cluster is stopping; handed back: %s", handed)
        return
    waiting = InboundEvent.objects.filter(status=InboundStatus.RECEIVED).count()
    processed = total.get(InboundStatus.PROCESSED, 0)
    ignored = total.get(InboundStatus.IGNORED, 0)
    failed = total.get(InboundStatus.FAILED, 0)
    logger.info("inbox sweep%s: %d processed, %d waiting, %d failed%s %s%s",
                " stopped (the cluster is stopping)" if stopped else "", processed, waiting, failed,
                f", {ignored} ignored" if ignored else "", _rate(handled, busy),
                "; the rest handed back to the queue" if handed else "")
