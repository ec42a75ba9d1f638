"""What at the edges needs a person: dead-lettered deliveries, member messages that may have been sent,
webhooks waiting or failed, record exceptions still open. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q

from .models import Delivery, DeliveryStatus, InboundEvent, InboundStatus, RecordException, RecordExceptionStatus

# A healthy worker applies a webhook within seconds: the dashboard mentions waiting events once the
# oldest has waited this long (the admin's list always shows them).
WAITING_NOTICE = timedelta(minutes=1)


def age_text(delta: timedelta) -> str:
    """'under a minute', '12 min', '5 h', '3 days'."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


@dataclass(frozen=True)
class InboxBacklog:
    """Webhooks not processed: waiting (received, including those waiting with backoff for their
    object or for the processor) and failed, each with when the oldest arrived."""

    now: datetime
    waiting: int
    oldest_waiting_at: datetime | None
    backing_off: int                # of the waiting, those whose next attempt is later (backoff)
    failed: int
    oldest_failed_at: datetime | None
    unassigned: int                 # waiting or failed, not tied to a practice yet (a Stripe event until applied)

    @property
    def oldest_waiting(self) -> str:
        return age_text(self.now - self.oldest_waiting_at) if self.oldest_waiting_at else ""

    @property
    def oldest_failed(self) -> str:
        return age_text(self.now - self.oldest_failed_at) if self.oldest_failed_at else ""

    @property
    def waiting_overdue(self) -> bool:
        return bool(self.waiting and self.oldest_waiting_at and self.now - self.oldest_waiting_at >= WAITING_NOTICE)


def inbox_backlog(*, practice_id: int | None, now: datetime) -> InboxBacklog:
    """One query. For a practice (None: every practice) its own events and those not tied to any
    practice yet: a Stripe event learns its practice only when it is applied, so until then it
    concerns every practice of the deployment (counts only; the events themselves stay in the
    admin, scoped as ever)."""
    scope = Q() if practice_id is None else Q(practice_id=practice_id) | Q(practice_id__isnull=True)
    received, failed = Q(status=InboundStatus.RECEIVED), Q(status=InboundStatus.FAILED)
    row = InboundEvent.objects.filter(scope, status__in=[InboundStatus.RECEIVED, InboundStatus.FAILED]).aggregate(
        waiting=Count("pk", filter=received), oldest_waiting_at=Min("received_at", filter=received),
        backing_off=Count("pk", filter=received & Q(next_attempt_at__gt=now)),
        failed=Count("pk", filter=failed), oldest_failed_at=Min("received_at", filter=failed),
        unassigned=Count("pk", filter=Q(practice_id__isnull=True)),
    )
    return InboxBacklog(now=now, **row)


@dataclass(frozen=True)
class Attention:
    dead_deliveries: int
    open_record_exceptions: int
    inbox: InboxBacklog
    # Member messages whose sending stopped before the provider's answer was recorded.
    uncertain_deliveries: int = 0

    @property
    def failed_webhooks(self) -> int:
        return self.inbox.failed

    @property
    def total(self) -> int:
        waiting = self.inbox.waiting if self.inbox.waiting_overdue else 0
        return (self.dead_deliveries + self.uncertain_deliveries + self.inbox.failed + waiting
                + self.open_record_exceptions)


def needs_attention(*, practice_id: int | None, now: datetime) -> Attention:
    """Counts for one practice (None: every practice, for a superuser)."""
    scope = {} if practice_id is None else {"practice_id": practice_id}
    deliveries = Delivery.objects.filter(status__in=[DeliveryStatus.DEAD, DeliveryStatus.UNCERTAIN],
                                         checked_at__isnull=True, **scope).aggregate(
        dead=Count("pk", filter=Q(status=DeliveryStatus.DEAD)),
        uncertain=Count("pk", filter=Q(status=DeliveryStatus.UNCERTAIN)))
    return Attention(
        dead_deliveries=deliveries["dead"], uncertain_deliveries=deliveries["uncertain"],
        open_record_exceptions=RecordException.objects.filter(status=RecordExceptionStatus.OPEN, **scope).count(),
        inbox=inbox_backlog(practice_id=practice_id, now=now),
    )


_MAX_PAYLOAD_STRINGS = 500


def _payload_strings(value, found: set[str]) -> set[str]:
    if len(found) >= _MAX_PAYLOAD_STRINGS:
        return found
    if isinstance(value, dict):
        for item in value.values():
            _payload_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _payload_strings(item, found)
    elif isinstance(value, str) and 0 < len(value) <= 200:
        found.add(value)
    return found


def members_named_by(event: InboundEvent) -> list[int]:
    """The members of the event's practice its payload names, as the ledger or the sender knows them:
    our opaque ids (`mb_…`, `ms_…`), a processor customer or subscription, a patient of the record.
    One query; ids ascending."""
    from memberships.models import Member

    strings = _payload_strings(event.payload, set())
    if not strings:
        return []
    ours = {prefix: {int(s[3:]) for s in strings if s.startswith(prefix) and s[3:].isdigit()}
            for prefix in ("mb_", "ms_")}
    members = Member.objects.filter(
        Q(pk__in=ours["mb_"]) | Q(memberships__pk__in=ours["ms_"]) | Q(processor_customer_id__in=strings)
        | Q(memberships__processor_subscription_id__in=strings) | Q(record_patient_id__in=strings))
    if event.practice_id is not None:
        members = members.filter(practice_id=event.practice_id)
    return sorted(set(members.values_list("pk", flat=True)))
