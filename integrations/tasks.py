"""django-q2 tasks of the edges. Each reads the clock once and is safe to run twice.

The two drains (outbox deliveries, inbox events) work in batches, each its own transaction, and look
before each batch whether their cluster is stopping (`integrations.stopping`): then they return and
hand the rest back to the queue, so a stopping worker exits within seconds and loses nothing. Each
logs one line per sweep — counts and rate, no member data."""

from __future__ import annotations

import logging
from time import monotonic

from django.conf import settings
from django.utils import timezone

from . import due, outbox, stopping

logger = logging.getLogger(__name__)

# Deliveries taken per batch (one clock reading): each may wait on a peer (up to its HTTP timeout);
# the drain begins no new one once its time is up or the cluster is stopping.
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


def dispatch_deliveries() -> dict[str, int]:
    """Deliver everything due, in batches, until nothing is due now. The clock is read once per
    batch: a long backlog's last batch marks the messages it hands to their provider with the time
    they are sent, not the time the drain began (`outbox.sweep_sending` reads that mark). No new
    delivery is begun once OUTBOX_SWEEP_SECONDS have passed (the next run goes on) or the cluster is
    stopping (the rest is handed back): a worker ended by the cluster's timeout, or by its process
    manager after the stop's grace, in the middle of a member's SMS or email would leave it "may
    have been sent"."""
    seconds = settings.OUTBOX_SWEEP_SECONDS
    deadline = monotonic() + seconds

    def time_to_stop() -> bool:             # 0: no time limit (as for the inbox's drain)
        return stopping.stop_requested() or (seconds > 0 and monotonic() >= deadline)

    sweep = due.drain(lambda: outbox.dispatch_due(now=timezone.now(), limit=OUTBOX_BATCH, stop=time_to_stop),
                      seconds=seconds)
    handed = _hand_back("integrations.tasks.dispatch_deliveries", group="outbox") if sweep.stopped else False
    if sweep.handled:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(sweep.total.items()))
        logger.info("outbox sweep%s: %s %s%s", " stopped (the cluster is stopping)" if sweep.stopped else "",
                    summary, sweep.rate(), "; the rest handed back to the queue" if handed else "")
    elif sweep.stopped:
        logger.debug("outbox sweep not started: the cluster is stopping; handed back: %s", handed)
    return sweep.total


def process_inbound_event(inbound_id: int) -> str | None:
    """Process one stored webhook (no-op when another worker has it or it is done)."""
    from . import inbox

    return inbox.process_inbound(inbound_id, now=timezone.now())


def process_inbound_backlog() -> dict[str, int]:
    """Drain every received event that is due (queued by the webhook view, and every minute as the
    sweep for lost tasks and retries), one batch at a time. After finding nothing it looks once
    more INBOX_TRIGGER_SECONDS later (see `intake.trigger_processing`). Stops after
    INBOX_SWEEP_SECONDS, well inside the cluster's timeout (the next run continues), and before the
    next batch when the cluster is stopping (the rest is handed back to the queue)."""
    from . import inbox

    sweep = due.drain(lambda: inbox.process_due(now=timezone.now()), seconds=settings.INBOX_SWEEP_SECONDS,
                      recheck_after=settings.INBOX_TRIGGER_SECONDS + 0.2 if settings.INBOX_TRIGGER_SECONDS > 0 else 0)
    handed = _hand_back("integrations.tasks.process_inbound_backlog", group="inbox") if sweep.stopped else False
    _log_inbox_sweep(sweep, handed=handed)
    return sweep.total


def _log_inbox_sweep(sweep: due.Sweep, *, handed: bool) -> None:
    """One line per sweep that did something: what it did, what is still waiting in the inbox
    (received, including events waiting with backoff) and how fast. Counts only."""
    from .models import InboundEvent, InboundStatus

    total, stopped = sweep.total, sweep.stopped
    if not sweep.handled:             # an idle re-check, or a task a stopping worker had pulled already
        if stopped:
            logger.debug("inbox sweep not started: the cluster is stopping; handed back: %s", handed)
        return
    waiting = InboundEvent.objects.filter(status=InboundStatus.RECEIVED).count()
    processed = total.get(InboundStatus.PROCESSED, 0)
    ignored = total.get(InboundStatus.IGNORED, 0)
    failed = total.get(InboundStatus.FAILED, 0)
    logger.info("inbox sweep%s: %d processed, %d waiting, %d failed%s %s%s",
                " stopped (the cluster is stopping)" if stopped else "", processed, waiting, failed,
                f", {ignored} ignored" if ignored else "", sweep.rate(),
                "; the rest handed back to the queue" if handed else "")


def reduce_old_inbox_payloads() -> int:
    """Nightly: full processor and record payloads older than INBOX_RETENTION_DAYS become ids and
    outcome (`integrations.retention`). Logs the count only."""
    from .retention import reduce_old_payloads

    count = reduce_old_payloads(now=timezone.now())
    if count:
        logger.info("inbox retention: %d payloads reduced to ids and outcome", count)
    return count
