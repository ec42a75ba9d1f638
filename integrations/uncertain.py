"""Outbox deliveries that may have been sent: a member message (SMS, email) handed to its provider
whose outcome was never recorded — its worker died after marking it SENDING (`sweep_sending` finds
it), the provider's answer was lost after the request went (`outbox.MayHaveBeenSent`: a read
timeout, a server error), or its destination failed after the provider accepted it
(`integrations.outbox`). Such a
delivery becomes UNCERTAIN and its destination is told (`on_uncertain`), so its own record (the
dunning message, the notice's channel) says "may have been sent" too. It is never sent again by
itself: a manager checks and redelivers (`outbox.redeliver`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from memberships.failures import error_text, log_failure
from memberships.models import Event

from .models import Delivery, DeliveryStatus

logger = logging.getLogger(__name__)

UNCERTAIN_NOTE = ("may have been sent: it was handed to the provider and its answer was not recorded (the "
                  "worker stopped, the answer was lost, or recording it failed), so whether it went is not known. "
                  "It is not sent again by itself; check with the member or the provider's log, then redeliver if it "
                  "did not go.")


def sweep_sending(*, now: datetime, destinations: Mapping[str, Any], limit: int = 100) -> int:
    """Deliveries marked SENDING for longer than OUTBOX_SENDING_TIMEOUT_SECONDS whose worker is gone
    (its row lock went with its connection; a live worker's row is skipped, however slow its provider)
    become UNCERTAIN. `destinations`: the outbox's, by name. Returns how many."""
    cutoff = now - timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS)
    stale = (Delivery.objects.filter(status=DeliveryStatus.SENDING, sending_since__lte=cutoff)
             .order_by("sending_since", "id").values_list("pk", "sending_since")[:limit])
    return sum(give_up(delivery_id, mark=mark, now=now, destinations=destinations) for delivery_id, mark in list(stale))


def give_up(delivery_id: int, *, mark: datetime, now: datetime, destinations: Mapping[str, Any], why: str = "") -> bool:
    """SENDING (with this mark) → UNCERTAIN, by a conditional UPDATE on status and mark, so it never
    overwrites a worker's outcome (and SKIP LOCKED: never a row a live worker holds); the destination
    is told in the same transaction. Returns whether it turned."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(skip_locked=True)
                    .filter(pk=delivery_id, status=DeliveryStatus.SENDING, sending_since=mark).first())
        if delivery is None:                    # a worker still holds it, or it has its outcome
            return False
        turned = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING, sending_since=mark).update(
            status=DeliveryStatus.UNCERTAIN, note=UNCERTAIN_NOTE[:300], last_error=why[:2000], finished_at=now)
        if not turned:
            return False
        destination = destinations.get(delivery.destination)
        event = Event.objects.select_related("practice", "member").get(pk=delivery.event_id)
        failed = tell_destination(destination, event, delivery=delivery, now=now)
        if failed:
            Delivery.objects.filter(pk=delivery_id).update(last_error=failed[:2000])
    logger.warning("delivery %s to %s may have been sent: marked for a manager, not sent again", delivery_id,
                   delivery.destination)
    return True


def tell_destination(destination, event: Event, *, delivery: Delivery, now: datetime) -> str:
    """The destination's `on_uncertain`, in a savepoint. If it raises, the delivery still reads "may
    have been sent" (it is the record a manager reads), with the error; returns the error's text."""
    return call_hook(destination, "on_uncertain", lambda: event, delivery=delivery, now=now,
                     what="record 'may have been sent'")


def call_hook(destination, name: str, event, *, delivery: Delivery, now: datetime, what: str) -> str:
    """The destination's hook `name` (if it has one) with the event (`event()` read only then), in a
    savepoint: a hook that raises is logged and undone, and the outbox's own record of the delivery
    stands. Returns the error's text, or ""."""
    hook = getattr(destination, name, None)
    if hook is None:
        return ""
    try:
        with transaction.atomic():
            hook(event(), delivery=delivery, now=now)
    except Exception as exc:
        log_failure(logger, "delivery %s: its destination could not %s", delivery.pk, what, exc=exc)
        return error_text(exc)
    return ""
