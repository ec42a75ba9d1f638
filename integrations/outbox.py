"""The outbox: every Event that another system must hear about becomes one Delivery per destination
(written in the Event's own transaction), and a django-q2 task delivers them with retries.

A destination registers itself with `register()`:

    class RecordDestination:
        name = "record"
        def wants(self, event) -> bool: ...              # does this event concern me?
        def required_stage(self, event) -> str: ...      # AutomationStage that allows the effect
        def describe(self, event) -> str: ...            # "set the chart flag 'Card declined'"
        def deliver(self, event, *, delivery, now) -> dict: ...   # do it; idempotent on
                                                                   # delivery.idempotency_key
        repeatable = True   # its peer does nothing twice for one idempotency key (default False)

`deliver` raises `RetryableDeliveryError` (peer unavailable, 5xx, timeout: retried with backoff),
`PermanentDeliveryError` (declined, invalid: a business outcome, not retried), `DeferDelivery`
(not now, at a given time — an SMS in quiet hours: no attempt is spent) or, for a message that
cannot be asked for twice, `MayHaveBeenSent` (the provider's answer was lost after the request
went: UNCERTAIN, below). Anything else it raises
(a bug, bad data, a database error) is undone to a savepoint, logged by ids and treated as
retryable: the attempt counts, and the queue goes on with the next delivery. Below the required stage
nothing leaves (the stage of the event's member's home location, else the practice's:
`memberships.services.stages`): the delivery is recorded as SHADOWED with "would have …". A destination may also
define `on_dead(event, *, delivery, now)`: called in the same transaction when its delivery is
dead-lettered, so the business side learns the effect never happened (the dead letter stays for a
manager to see and redeliver).

Not every peer can be asked twice. The processor (Idempotency-Key) and the record (idempotent on
`delivery.idempotency_key`) can: a `repeatable` destination is called inside the transaction that
locks its row, and a worker that dies mid-call leaves the row as it was, to be delivered again. SMS
and email cannot (Twilio and SMTP take no idempotency key): for any other destination the row is
first marked SENDING and committed, then the provider is called and the outcome recorded. A worker
that dies in between leaves the mark; no worker takes a SENDING row, and after
OUTBOX_SENDING_TIMEOUT_SECONDS `sweep_sending` makes it UNCERTAIN ("may have been sent"), calling the
destination's `on_uncertain(event, *, delivery, now)` so its own record (the dunning message, the
notice's channel) says so too. A manager redelivers it, or a dead or failed one, by hand
(`redeliver`: `integrations.redelivery`, whose `on_redeliver(event, *, delivery, now)` sets that
record back to waiting, or refuses with the reason).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from memberships.failures import error_text, log_failure
from memberships.models import Event
from memberships.services.stages import at_least, event_stage

from . import due, redelivery, uncertain
from .due import is_lock_conflict
from .models import Delivery, DeliveryStatus
from .redelivery import REDELIVERABLE, RedeliveryRefused  # noqa: F401  (the outbox's public names)
from .uncertain import UNCERTAIN_NOTE, tell_destination

logger = logging.getLogger(__name__)


class RetryableDeliveryError(Exception):
    """The peer could not be reached or failed: try again later."""


class PermanentDeliveryError(Exception):
    """The peer answered no (declined, invalid): retrying would not help."""


class DeferDelivery(Exception):
    """Not now: try again at `until` (e.g. the end of the member's quiet hours). Spends no attempt."""

    def __init__(self, until: datetime, reason: str):
        super().__init__(reason)
        self.until = until


class MayHaveBeenSent(Exception):
    """The provider may have the message but never said so (Twilio's answer timed out after the
    request went; the mail server dropped the line during the message): not retried, which could
    send it twice — UNCERTAIN ("may have been sent"), for a manager, as after a dead worker."""


class Destination(Protocol):
    name: str

    def wants(self, event: Event) -> bool: ...

    def required_stage(self, event: Event) -> str: ...

    def describe(self, event: Event) -> str: ...

    def deliver(self, event: Event, *, delivery: Delivery, now: datetime) -> dict: ...


_REGISTRY: dict[str, Destination] = {}


def register(destination: Destination) -> Destination:
    _REGISTRY[destination.name] = destination
    return destination


def registered() -> dict[str, Destination]:
    return dict(_REGISTRY)


def fan_out_many(events: list[Event]) -> list[Delivery]:
    """Create the events' deliveries, one per destination that wants each, in the events' transaction
    (`memberships.services.common.announce_events` calls it for every timeline event)."""
    deliveries = [
        Delivery(event=event, practice_id=event.practice_id, destination=name, next_attempt_at=event.created_at,
                 created_at=event.created_at)
        for event in events
        for name, destination in _REGISTRY.items()
        if destination.wants(event)
    ]
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        transaction.on_commit(enqueue_dispatch)
    return deliveries


def enqueue_dispatch() -> None:
    from django_q.tasks import async_task

    try:
        async_task("integrations.tasks.dispatch_deliveries", group="outbox")
    except Exception:  # the broker being down must not break the business change; the schedule retries
        logger.exception("could not enqueue the outbox dispatcher; the periodic schedule will pick it up")


def backoff(attempts: int) -> timedelta:
    """How long a delivery that failed waits before its next attempt (`integrations.due.backoff`)."""
    return due.backoff(attempts, base=settings.OUTBOX_BACKOFF_BASE_SECONDS, cap=settings.OUTBOX_BACKOFF_MAX_SECONDS)


def deliver_one(delivery_id: int, *, now: datetime) -> str | None:
    """Deliver one due delivery under a row lock (SKIP LOCKED: two workers never take the same row).
    A repeatable destination (its peer idempotent on `delivery.idempotency_key`) is called in that
    lock's transaction, as a repeat after a crash does nothing twice. Any other (a member's SMS or
    email) is first marked SENDING and committed, then called (`_send`): a worker that dies during
    the call leaves the mark, which no worker takes again (`sweep_sending` turns it into "may have
    been sent" for a manager). An unexpected exception from the destination (a bug, bad data, a
    database error) counts as a failed attempt: what the destination wrote is undone, the delivery is
    retried with backoff and dead-lettered after OUTBOX_MAX_ATTEMPTS, like a peer that is down —
    unless the destination had said its provider had the message (`handed_over`): then it may have
    gone, and it is UNCERTAIN."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
                    next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        destination, waiting_as = _REGISTRY.get(delivery.destination), delivery.status
        event = Event.objects.select_related("practice", "member__home_location", "membership").get(pk=delivery.event_id)
        if destination is None:
            delivery.status, delivery.last_error = DeliveryStatus.DEAD, "no such destination is registered"
        elif not at_least(event_stage(event), destination.required_stage(event)):
            delivery.status = DeliveryStatus.SHADOWED
            delivery.note = f"would have: {destination.describe(event)}"[:300]
            if hasattr(destination, "held_back"):           # its own record of the effect, if it keeps one
                destination.held_back(event, now=now)
        elif getattr(destination, "repeatable", False):
            delivery.attempts += 1
            _attempt(delivery, destination, event, now=now)
        else:
            delivery.attempts += 1
            delivery.status, delivery.sending_since = DeliveryStatus.SENDING, now
            delivery.save(update_fields=["status", "attempts", "sending_since"])
        if delivery.status != DeliveryStatus.SENDING:
            _save(delivery, now=now)
            return delivery.status
    return _send(delivery_id, destination, event, waiting_as=waiting_as, mark=now, now=now)


def _send(delivery_id: int, destination: Destination, event: Event, *, waiting_as: str, mark: datetime,
          now: datetime) -> str | None:
    """Call a destination that must not repeat itself, its SENDING mark committed: the row is locked
    again for the call (a live worker's lock keeps `sweep_sending` away from it, however long the
    provider takes), and the outcome is saved with the destination's own writes in one transaction.
    If the process dies before that commit, nothing of the outcome is written and the mark stays. If
    only our bookkeeping failed after the destination answered, the message may have gone: the row
    becomes UNCERTAIN at once; before an answer, the attempt counts as failed and is retried."""
    delivery = None
    try:
        with transaction.atomic():
            delivery = (Delivery.objects.select_for_update()
                        .filter(pk=delivery_id, status=DeliveryStatus.SENDING, sending_since=mark).first())
            if delivery is None:                # given up on by the sweep meanwhile: not sent by us
                return None
            delivery.status, delivery.sending_since = waiting_as, None
            _attempt(delivery, destination, event, now=now)
            if delivery.status == DeliveryStatus.UNCERTAIN:
                delivery.sending_since = mark
            _save(delivery, now=now)
            return delivery.status
    except Exception as exc:
        log_failure(logger, "delivery %s to %s: its outcome could not be recorded", delivery_id,
                    getattr(destination, "name", "?"), exc=exc)
        if delivery is not None and (getattr(delivery, "handed_over", False)
                                     or delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCERTAIN)):
            gone = uncertain.give_up(delivery_id, mark=mark, now=now, destinations=_REGISTRY, why=error_text(exc))
            return DeliveryStatus.UNCERTAIN if gone else None
        return _count_failed_attempt(delivery_id, exc=exc, now=now, mark=mark)


def _attempt(delivery: Delivery, destination: Destination, event: Event, *, now: datetime) -> None:
    """Call the destination and set the delivery's outcome (not saved)."""
    try:
        result = _call(destination, event, delivery=delivery, now=now)
    except PermanentDeliveryError as exc:
        delivery.status, delivery.last_error = DeliveryStatus.FAILED, str(exc)[:2000]
    except MayHaveBeenSent as exc:
        _uncertain(delivery, destination, event, error=str(exc), now=now)
    except DeferDelivery as exc:
        delivery.attempts -= 1
        delivery.next_attempt_at = max(exc.until, now)
        delivery.note = f"deferred: {exc}"[:300]
    except RetryableDeliveryError as exc:
        _retry_or_dead(delivery, destination, event, error=str(exc), now=now)
    except Exception as exc:  # unexpected: a failed attempt like any other, never a blocked queue
        log_failure(logger, "delivery %s to %s (event %s) failed unexpectedly", delivery.pk,
                    delivery.destination, delivery.event_id, exc=exc)
        if getattr(delivery, "handed_over", False) and not getattr(destination, "repeatable", False):
            _uncertain(delivery, destination, event, error=error_text(exc), now=now)
        else:
            _retry_or_dead(delivery, destination, event, error=error_text(exc), now=now)
    else:
        delivery.result = result or {}
        delivery.status = DeliveryStatus.DELIVERED
        delivery.note = destination.describe(event)[:300]
        delivery.last_error = ""
    logger.info("delivery %s to %s: %s (attempt %s)", delivery.pk, delivery.destination,
                delivery.status, delivery.attempts)


def handed_over(delivery: Delivery) -> None:
    """Called by a destination the moment its provider accepted the message: from here on, a failure
    of the destination (recording the send, say) means the message may have gone — UNCERTAIN, never
    retried by itself — rather than a failed attempt."""
    delivery.handed_over = True


def _uncertain(delivery: Delivery, destination: Destination, event: Event, *, error: str, now: datetime) -> None:
    """A message its provider accepted, whose destination then failed (its own record of the send
    undone): it may have gone. UNCERTAIN, as after a dead worker, and the destination told."""
    delivery.status, delivery.note = DeliveryStatus.UNCERTAIN, UNCERTAIN_NOTE[:300]
    delivery.last_error = (tell_destination(destination, event, delivery=delivery, now=now) or error)[:2000]


def _save(delivery: Delivery, *, now: datetime) -> None:
    if delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.SHADOWED, DeliveryStatus.FAILED,
                           DeliveryStatus.DEAD, DeliveryStatus.UNCERTAIN):
        delivery.finished_at = now
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "last_error", "note", "result",
                                 "finished_at", "sending_since"])


def _call(destination: Destination, event: Event, *, delivery: Delivery, now: datetime) -> dict:
    """`destination.deliver` in a savepoint. What it wrote stays when it answers, including with
    one of our delivery errors (a declined retry records its decline, then raises); anything else
    it raised undoes its writes, so a database error leaves our transaction usable."""
    answer: Exception | None = None
    with transaction.atomic():
        try:
            return destination.deliver(event, delivery=delivery, now=now)
        except (PermanentDeliveryError, DeferDelivery, RetryableDeliveryError, MayHaveBeenSent) as exc:
            answer = exc
    raise answer


def _retry_or_dead(delivery: Delivery, destination: Destination, event: Event, *, error: str, now: datetime) -> None:
    delivery.last_error = error[:2000]
    if delivery.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.DEAD
        on_dead = getattr(destination, "on_dead", None)
        if on_dead is not None:
            on_dead(event, delivery=delivery, now=now)
    else:
        delivery.status = DeliveryStatus.RETRYING
        delivery.next_attempt_at = now + backoff(delivery.attempts)


def _tell_dead(delivery: Delivery, *, now: datetime) -> None:
    uncertain.call_hook(_REGISTRY.get(delivery.destination), "on_dead",
                        lambda: Event.objects.select_related("practice", "member").get(pk=delivery.event_id),
                        delivery=delivery, now=now, what="record the dead letter")


def sweep_sending(*, now: datetime, limit: int = 100) -> int:
    """The deliveries whose worker died while sending become "may have been sent"
    (`integrations.uncertain`); returns how many."""
    return uncertain.sweep_sending(now=now, destinations=_REGISTRY, limit=limit)


def dispatch_due(*, now: datetime | None = None, limit: int = 200,
                 stop: Callable[[], bool] | None = None) -> dict[str, int]:
    """Deliver what is due now, oldest first, after turning the deliveries whose worker died while
    sending into "may have been sent" (`sweep_sending`). Safe to run in several workers at once, and
    twice. A delivery whose own bookkeeping fails (not only its destination) still counts an attempt
    and never holds up the ones after it; one that met a busy database (SQLite's one writer) spends
    none, and the batch ends there. `stop`: asked before each delivery; when it says so, the
    rest waits for the next run (a worker about to be ended must not be in a provider's call)."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    try:
        given_up = sweep_sending(now=now)
    except Exception as exc:  # the sweep must not hold up the deliveries; the next run sweeps again
        log_failure(logger, "the sweep of deliveries left sending failed", exc=exc)
        given_up = 0
    if given_up:
        counts[DeliveryStatus.UNCERTAIN] = given_up
    due = (
        Delivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
                                next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for delivery_id in list(due):
        if stop is not None and stop():
            break
        try:
            status = deliver_one(delivery_id, now=now)
        except Exception as exc:
            if connection.vendor == "sqlite" and is_lock_conflict(exc):    # its one writer was busy
                logger.info("outbox batch stopped: the database was busy; the next run goes on")
                break
            log_failure(logger, "delivery %s could not be processed", delivery_id, exc=exc)
            status = _count_failed_attempt(delivery_id, exc=exc, now=now)
        if status:
            counts[status] = counts.get(status, 0) + 1
    return counts


def _count_failed_attempt(delivery_id: int, *, exc: Exception, now: datetime,
                          mark: datetime | None = None) -> str | None:
    """The fallback when `deliver_one` itself raised (its work was rolled back): one attempt spent,
    retried with backoff, dead-lettered after OUTBOX_MAX_ATTEMPTS (its `on_dead` in a savepoint: it
    may be what failed, and then the dead letter in the admin is the record). With `mark`: this
    worker's SENDING row, whose attempt was counted when it was marked."""
    with transaction.atomic():
        rows = Delivery.objects.select_for_update(skip_locked=True).filter(pk=delivery_id)
        if mark is None:
            rows = rows.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
        else:
            rows = rows.filter(status=DeliveryStatus.SENDING, sending_since=mark)
        delivery = rows.first()
        if delivery is None:
            return None
        if mark is None:
            delivery.attempts += 1
        delivery.last_error, delivery.sending_since = error_text(exc), None
        if delivery.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            delivery.status, delivery.finished_at = DeliveryStatus.DEAD, now
            _tell_dead(delivery, now=now)
        else:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.RETRYING, now + backoff(delivery.attempts)
        delivery.save(update_fields=["status", "attempts", "next_attempt_at", "last_error", "finished_at",
                                     "sending_since"])
        return delivery.status


def redeliver(delivery: Delivery, *, now: datetime) -> bool:
    """A manager's retry of a dead-lettered, failed or may-have-been-sent delivery
    (`integrations.redelivery`): its destination's record is set back to waiting (`on_redeliver`),
    so it really goes again, once. Returns whether it was queued; raises `RedeliveryRefused`
    (nothing changed) when the destination says it could not do what it says."""
    return redelivery.redeliver(delivery, now=now, destinations=_REGISTRY)
