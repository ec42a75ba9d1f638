"""A manager's redelivery of an outbox delivery that did not go through: dead-lettered (its peer
stayed down), failed (its peer answered no: a wrong number, say) or may-have-been-sent. The row goes
back in the queue with its attempts reset, and its destination's `on_redeliver(event, *, delivery,
now)` first sets its own record back to waiting (the dunning message, the notice's channel), so the
delivery really does it again rather than finding it finished. `delivery.status` tells the hook what
it was. A hook that sees the redelivery could not do what it says (the member replied STOP, the
payment follow-up ended, a member-page link expired) raises `RedeliveryRefused` with the reason for
the manager: nothing changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from memberships.models import Event

from .models import Delivery, DeliveryStatus

REDELIVERABLE = (DeliveryStatus.DEAD, DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)


class RedeliveryRefused(Exception):
    """A redelivery that would not do what it says; the message tells the manager why."""


def redeliver(delivery: Delivery, *, now: datetime, destinations: Mapping[str, Any]) -> bool:
    """Queue `delivery` again (see the module). Returns whether it was queued (False: it is not dead,
    failed or may-have-been-sent any more: another manager was first, or it went). Raises
    `RedeliveryRefused`, changing nothing, when its destination refuses."""
    with transaction.atomic():
        row = Delivery.objects.select_for_update().filter(pk=delivery.pk, status__in=REDELIVERABLE).first()
        if row is None:
            return False
        hook = getattr(destinations.get(row.destination), "on_redeliver", None)
        if hook is not None:
            event = Event.objects.select_related("practice", "member").get(pk=row.event_id)
            hook(event, delivery=row, now=now)
        Delivery.objects.filter(pk=row.pk).update(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now,
                                                  finished_at=None, sending_since=None, checked_at=None,
                                                  checked_by=None)
    return True
