"""django-q2 tasks of the edges. Each reads the clock once and is safe to run twice."""

from __future__ import annotations

from django.utils import timezone

from . import outbox


def dispatch_deliveries() -> dict[str, int]:
    """Deliver everything due, in batches, until nothing is due now."""
    now = timezone.now()
    total: dict[str, int] = {}
    while True:
        counts = outbox.dispatch_due(now=now)
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
        if not counts:
            return total


def process_inbound_event(inbound_id: int) -> str | None:
    """Process one stored webhook (no-op when another worker has it or it is done)."""
    from . import inbox

    return inbox.process_inbound(inbound_id, now=timezone.now())


def process_inbound_backlog() -> dict[str, int]:
    """Drain every received event that is due (queued by the webhook view, and every minute as the
    sweep for lost tasks and retries). After finding nothing it looks once more INBOX_TRIGGER_SECONDS
    later (see `inbox.trigger_processing`). Stops after INBOX_SWEEP_SECONDS, well inside the
    cluster's timeout; the next run continues."""
    import time

    from django.conf import settings

    from . import inbox

    deadline = time.monotonic() + settings.INBOX_SWEEP_SECONDS
    total: dict[str, int] = {}
    rechecked = False
    while time.monotonic() < deadline:
        counts = inbox.process_due(now=timezone.now())
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
        if counts:
            rechecked = False
            continue
        if rechecked or settings.INBOX_TRIGGER_SECONDS <= 0:
            return total
        time.sleep(settings.INBOX_TRIGGER_SECONDS + 0.2)
        rechecked = True
    return total
