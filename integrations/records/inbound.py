"""Record events into the ledger.

- `receive_webhook`: store the verified webhook once (unique on source + event id); the caller
  answers 2xx at once and a task processes it.
- `process_inbound_event` / `apply_inbound_row`: the task's body (the inbox's sweep and its admin
  re-process action hand record sources to `apply_inbound_row` too). The adapter parses (and, for FHIR and Zenoti, re-reads
  the object from the record); each event is applied:
    booked    → reserve the entitlement (the hold is keyed by the appointment id);
    completed → commit the hold, or redeem directly when nothing was held;
    cancelled / no-show → release the hold.
  Idempotent by the record's appointment id: a replayed webhook spends nothing. Order does not
  matter: a cancellation or a completion is remembered on the appointment (`RecordAppointment`),
  so a booking that arrives after either holds nothing. In the stages before `redemptions`
  nothing is held or spent: the treatment is recorded for review.
- Whatever the ledger cannot do by itself (unknown patient or service, no membership, a service
  the tier does not include, no balance left) becomes a `RecordException` for staff — never a
  silent drop and never a negative balance.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from integrations.due import is_lock_conflict
from integrations.intake import retry_delay, trigger_processing  # queued like every inbox event
from integrations.models import (
    InboundEvent,
    InboundStatus,
    RecordAppointment,
    RecordException,
    RecordExceptionKind,
    RecordServiceMap,
)
from memberships import selectors as ledger
from memberships import services
from memberships.errors import InsufficientBalance, LedgerError, MembershipNotRedeemable, ServiceNotIncluded
from memberships.failures import error_text
from memberships.models import (
    AutomationStage,
    EventKind,
    LedgerEntry,
    Location,
    Member,
    Membership,
    Practice,
    Reservation,
    ReservationStatus,
    Service,
)
from memberships.services.stages import stage_at_least_for

from . import get_adapter
from .base import (AppointmentBooked, AppointmentCancelled, InboundWebhook, RecordEvent, RecordUnavailable,
                   TreatmentCompleted)

logger = logging.getLogger(__name__)


def source_for(adapter_name: str, practice: Practice, location: Location | None = None) -> str:
    """Webhooks are unique per practice: two practices' records may well use the same event ids
    (FHIR `Procedure/1/_history/1` on two servers); a location that runs its own record is a source
    of its own (`record:<adapter>:<practice>:<location>`)."""
    if location is not None:
        return f"record:{adapter_name}:{practice.pk}:{location.pk}"[:40]
    return f"record:{adapter_name}:{practice.pk}"[:40]


def source_location(row: InboundEvent) -> Location | None:
    """The location whose own record sent a stored webhook (None: the practice's record)."""
    parts = row.source.split(":")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return Location.objects.filter(pk=int(parts[3]), practice_id=row.practice_id).first()


def row_adapter(row: InboundEvent):
    """The adapter that reads a stored webhook: the sending location's record, else the practice's."""
    return get_adapter(row.practice, source_location(row))


def receive_webhook(*, webhook: InboundWebhook, adapter_name: str, now: datetime) -> tuple[InboundEvent, bool]:
    """Store a verified webhook once. Returns (row, created); a duplicate returns the first row."""
    source = source_for(adapter_name, webhook.practice, webhook.location)
    try:
        with transaction.atomic():
            row = InboundEvent.objects.create(
                source=source, event_id=webhook.event_id, event_type=webhook.event_type[:100],
                payload=webhook.payload, practice=webhook.practice, received_at=now,
            )
    except IntegrityError:
        return InboundEvent.objects.get(source=source, event_id=webhook.event_id), False
    transaction.on_commit(lambda: trigger_processing(row.pk))
    return row, True


# --- keys ------------------------------------------------------------------------------------------


def hold_key(practice: Practice, appointment_id: str) -> str:
    return f"record:{practice.pk}:appt:{appointment_id}:hold"[:200]


def spend_key(practice: Practice, appointment_id: str) -> str:
    """One spend per appointment, whether by committing its hold or by a direct redemption."""
    return f"record:{practice.pk}:appt:{appointment_id}:spend"[:200]


# --- resolution -----------------------------------------------------------------------------------


def resolve_member(practice: Practice, event: RecordEvent) -> Member | None:
    """The member of the record's patient id — only if one member alone is linked to it (two linked to
    one chart, a household or a chart merged in the record, is no guess to spend on) — else of the
    member number the event gives, else None."""
    members = Member.objects.filter(practice=practice)
    if event.patient_id:
        found = list(members.filter(record_patient_id=event.patient_id).order_by("pk")[:2])
        if len(found) == 1:
            return found[0]
    if event.member_number:
        return members.filter(member_number=event.member_number).first()
    return None


def resolve_service(practice: Practice, code: str) -> Service | None:
    if not code:
        return None
    mapped = RecordServiceMap.objects.filter(practice=practice, external_code=code).select_related("service").first()
    if mapped is not None:
        return mapped.service
    return Service.objects.filter(practice=practice, code=code).first() or \
        Service.objects.filter(practice=practice, code__iexact=code).first()


def open_exception(*, practice: Practice, event: RecordEvent, kind: str, detail: str, now: datetime,
                   member: Member | None = None, service: Service | None = None,
                   inbound: InboundEvent | None = None) -> RecordException:
    """One open exception per (appointment, event type, kind); the member's timeline notes it."""
    row, created = RecordException.objects.get_or_create(
        practice=practice, appointment_ref=event.appointment_id, event_type=event.type, kind=kind,
        defaults=dict(member=member, service=service, inbound=inbound, patient_ref=event.patient_id[:200],
                      service_ref=event.service_code[:200], quantity=event.quantity, detail=detail[:500],
                      occurred_at=event.occurred_at, created_at=now),
    )
    if created:
        logger.info("record exception %s (%s) for appointment event in practice %s", row.pk, kind, practice.pk)
        if member is not None:
            services.record_event(member=member, kind=EventKind.RECORD_EXCEPTION,
                                  summary=f"Record: {row.get_kind_display()} — for staff to resolve",
                                  payload={"record_exception_id": row.pk, "kind": kind},
                                  actor=services.Actor.record(), now=now)
    return row


_LEDGER_KINDS = ((InsufficientBalance, RecordExceptionKind.NO_BALANCE),
                 (ServiceNotIncluded, RecordExceptionKind.NOT_INCLUDED),
                 (MembershipNotRedeemable, RecordExceptionKind.NOT_REDEEMABLE))


def exception_kind(error: LedgerError) -> str:
    """The record exception a ledger refusal files."""
    for cls, kind in _LEDGER_KINDS:
        if isinstance(error, cls):
            return kind
    return RecordExceptionKind.INVALID


# --- the appointment, whatever the order ------------------------------------------------------------


def remember_appointment(*, practice: Practice, event: RecordEvent, now: datetime) -> RecordAppointment:
    """Lock the appointment's row (creating it on first sight) and remember a cancellation or a
    completed treatment on it. The lock serializes the events of one appointment, so a booking and
    its cancellation applied at the same moment by two workers still converge. Returns the row as
    it stands after this event."""
    cancelled = isinstance(event, AppointmentCancelled)
    completed = isinstance(event, TreatmentCompleted)
    # INSERT … ON CONFLICT DO NOTHING, then lock whichever row is there (ours or a twin's).
    RecordAppointment.objects.bulk_create([RecordAppointment(
        practice=practice, appointment_ref=event.appointment_id, first_seen_at=now,
        cancelled_at=now if cancelled else None, cancel_reason=event.reason if cancelled else "",
        completed_at=now if completed else None)], ignore_conflicts=True)
    row = RecordAppointment.objects.select_for_update().get(practice=practice, appointment_ref=event.appointment_id)
    changes: dict = {}
    if cancelled and row.cancelled_at is None:
        changes = {"cancelled_at": now, "cancel_reason": event.reason}
    elif completed and row.completed_at is None:
        changes = {"completed_at": now}
    if changes:
        RecordAppointment.objects.filter(pk=row.pk).update(**changes)
        for name, value in changes.items():
            setattr(row, name, value)
    return row


TREATMENT_REASON = "Treatment reported by the record"   # the spend's reason, whichever path writes it


def spend_for_appointment(*, practice: Practice, membership, service: Service, appointment_id: str,
                          quantity: int, actor: services.Actor, now: datetime,
                          reason: str = TREATMENT_REASON, quantity_stated: bool = True) -> str:
    """Spend once for a treatment of this appointment: commit its hold, or redeem directly when
    nothing is held. Keyed by the appointment (`spend_key`), so whoever spends first — the record's
    webhook or staff applying a held treatment — is the only one. A hold commits the quantity the
    treatment reports, not the booked one (20 units held, 12 injected: 12 spent); one that says no
    quantity (`quantity_stated`) commits it as booked. More done than the hold and the free balance
    cover: the hold is spent as booked (those units were done, and a hold left standing would keep
    them from her for good) and InsufficientBalance names the rest. Raises LedgerError."""
    key = spend_key(practice, appointment_id)
    held = Reservation.objects.filter(idempotency_key=hold_key(practice, appointment_id)).first()
    if held is not None and held.status in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
        done = quantity if quantity_stated else None
        try:
            services.commit_reservation(reservation=held, actor=actor, now=now, idempotency_key=key, quantity=done)
        except InsufficientBalance:
            if done is None or held.status != ReservationStatus.HELD or done <= held.quantity:
                raise
            services.commit_reservation(reservation=held, actor=actor, now=now, idempotency_key=key)
            raise InsufficientBalance(
                f"{service.format_quantity(done)} {service.name} done, {service.format_quantity(held.quantity)} "
                f"booked: the booked {service.format_quantity(held.quantity)} were spent; the other "
                f"{service.format_quantity(done - held.quantity)} are more than the balance has free.",
                membership_id=held.membership_id, service_id=held.service_id) from None
        return "committed"
    services.redeem_entitlement(membership=membership, service=service, quantity=quantity, actor=actor,
                                idempotency_key=key, now=now, reason=reason)
    return "redeemed"


# --- applying one event ---------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def apply_record_event(*, practice: Practice, event: RecordEvent, now: datetime,
                       inbound: InboundEvent | None = None) -> str:
    """Apply one record event to the ledger. Returns what happened (for the inbox row and logs).

    Webhooks arrive in any order; the final state does not depend on it. A cancellation or a
    completed treatment is remembered on the appointment first, so a booking that arrives after
    either holds nothing; a completion spends whether or not its booking (or a cancellation) came
    first; a replay of anything spends nothing."""
    actor = services.Actor.record(practice.record_adapter)
    member = resolve_member(practice, event)
    membership = ledger.current_membership(member=member) if member is not None else None
    if membership is not None:   # the membership before the appointment: the lock order every worker keeps
        lock_membership(membership)
    appointment = remember_appointment(practice=practice, event=event, now=now)
    if isinstance(event, AppointmentBooked):
        if appointment.completed_at is not None:
            spent = LedgerEntry.objects.filter(idempotency_key=spend_key(practice, event.appointment_id)).exists()
            return "already_spent" if spent else "already_completed"
        if appointment.cancelled_at is not None:
            return "already_cancelled"

    if member is None:
        shared = bool(event.patient_id) and Member.objects.filter(practice=practice,
                                                                  record_patient_id=event.patient_id).exists()
        open_exception(practice=practice, event=event, kind=RecordExceptionKind.UNKNOWN_PATIENT, inbound=inbound,
                       now=now, detail="Several members are linked to this patient of the record: link the right "
                                       "one." if shared else "No member is linked to this patient of the record.")
        return "exception:unknown_patient"
    service = resolve_service(practice, event.service_code)
    if service is None and not isinstance(event, AppointmentCancelled):
        open_exception(practice=practice, event=event, kind=RecordExceptionKind.UNKNOWN_SERVICE, member=member,
                       inbound=inbound, now=now,
                       detail="The record's service code matches no service (add a service mapping).")
        return "exception:unknown_service"
    if isinstance(event, AppointmentCancelled):
        return _release_hold(practice=practice, event=event, actor=actor, now=now)
    if membership is None:
        open_exception(practice=practice, event=event, kind=RecordExceptionKind.NO_MEMBERSHIP, member=member,
                       service=service, inbound=inbound, now=now, detail="The patient has no membership.")
        return "exception:no_membership"
    return _hold_or_spend(practice=practice, event=event, member=member, membership=membership, service=service,
                          actor=actor, inbound=inbound, now=now)


def _release_hold(*, practice: Practice, event: AppointmentCancelled, actor: services.Actor, now: datetime) -> str:
    held = Reservation.objects.filter(idempotency_key=hold_key(practice, event.appointment_id)).first()
    if held is None or held.status != ReservationStatus.HELD:
        return "nothing_held"
    services.release_reservation(reservation=held, actor=actor, now=now,
                                 reason="No-show" if event.reason == "no_show" else "Appointment cancelled")
    return "released"


def _hold_or_spend(*, practice: Practice, event: AppointmentBooked | TreatmentCompleted, member: Member,
                   membership, service: Service, actor: services.Actor, inbound: InboundEvent | None,
                   now: datetime) -> str:
    """A booking holds the units, a treatment spends them — from the redemptions stage on; before
    it a treatment is held for staff to review. What the ledger refuses becomes an exception."""
    if not stage_at_least_for(member, AutomationStage.REDEMPTIONS):     # the member's location's stage
        if isinstance(event, TreatmentCompleted):
            open_exception(practice=practice, event=event, kind=RecordExceptionKind.REVIEW, member=member,
                           service=service, inbound=inbound, now=now,
                           detail="Treatment reported by the record; held for review, since the record's "
                                  "treatments are not spent automatically at this practice yet.")
            return "review"
        return "observed"

    if LedgerEntry.objects.filter(idempotency_key=spend_key(practice, event.appointment_id)).exists():
        return "already_spent"  # a replay: nothing to do
    try:
        if isinstance(event, AppointmentBooked):
            services.reserve_entitlement(membership=membership, service=service, quantity=event.quantity,
                                         actor=actor, idempotency_key=hold_key(practice, event.appointment_id),
                                         external_ref=event.appointment_id, now=now)
            return "held"
        return spend_for_appointment(practice=practice, membership=membership, service=service,
                                     appointment_id=event.appointment_id, quantity=event.quantity,
                                     quantity_stated=event.quantity_stated, actor=actor, now=now)
    except LedgerError as exc:
        kind = exception_kind(exc)
        open_exception(practice=practice, event=event, kind=kind, member=member, service=service,
                       inbound=inbound, now=now, detail=exc.message)
        return f"exception:{kind}"


def apply_inbound_row(row: InboundEvent, *, now: datetime, save: bool = True,
                      parsed: list[RecordEvent] | Exception | None = None) -> str:
    """Process one stored record webhook whose row the caller holds locked, inside the caller's
    transaction (the inbox's `process_inbound` hands record sources here). Parses (re-fetching
    where the adapter does; `parsed`: what parsing it gave already, events or the exception),
    applies each event, and leaves the row processed / ignored, waiting (the record is down: tried
    again later with backoff) or failed. Returns the outcome."""
    row.attempts += 1
    practice = row.practice
    outcomes: list[str] = []
    try:
        with transaction.atomic():
            if isinstance(parsed, Exception):
                raise parsed
            events = row_adapter(row).parse_webhook(row.payload) if parsed is None else parsed
            for event in events:
                outcomes.append(apply_record_event(practice=practice, event=event, now=now, inbound=row))
        row.status = InboundStatus.PROCESSED if events else InboundStatus.IGNORED
        row.error = ", ".join(outcomes)[:2000]
        row.processed_at, row.next_attempt_at = now, None
        outcome = row.error or "ignored"
    except RecordUnavailable as exc:
        row.error = f"waiting: {exc}"[:2000]
        if row.attempts >= settings.INBOX_MAX_ATTEMPTS:
            row.status, row.processed_at = InboundStatus.FAILED, now
        else:
            row.next_attempt_at = now + retry_delay(row.attempts)
        outcome = "retry"
    except Exception as exc:  # bad data or a bug: undone to the savepoint above, the row fails visibly
        if is_lock_conflict(exc):   # another worker held the appointment or the membership: wait a moment
            row.error = "waiting: another worker held this appointment or membership"
            row.next_attempt_at = now + timedelta(seconds=random.uniform(0.1, 1.0))
            outcome = "retry"
        else:
            logger.warning("record event %s failed: %s", row.pk, type(exc).__name__)
            row.status, row.error = InboundStatus.FAILED, error_text(exc)
            row.processed_at, row.next_attempt_at = now, None
            outcome = "failed"
    if save:
        row.save(update_fields=["attempts", "status", "error", "processed_at", "next_attempt_at"])
    return outcome


def process_inbound_event(*, inbound_id: int, now: datetime, force: bool = False) -> str:
    """The task body for one record webhook: lock the row if it is due (SKIP LOCKED, so two workers
    never take the same row) and apply it. Safe to run twice: a processed row is skipped."""
    with transaction.atomic():
        rows = (InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).select_related("practice")
                .filter(pk=inbound_id))
        if not force:
            rows = rows.filter(status=InboundStatus.RECEIVED).filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        row = rows.first()
        if row is None:
            return "skipped"
        return apply_inbound_row(row, now=now)


def lock_membership(membership) -> None:
    """Hold the membership's row for the rest of the transaction (PostgreSQL; SQLite's write lock
    serializes everything already)."""
    if connection.features.has_select_for_update:
        list(Membership.objects.select_for_update(of=("self",)).filter(pk=membership.pk).values_list("pk"))


def link_patient(*, member: Member, patient_id: str) -> Member:
    """Staff link a member to the record's patient id (resolving an unknown-patient exception)."""
    Member.objects.filter(pk=member.pk).update(record_patient_id=patient_id.strip()[:100])
    member.refresh_from_db(fields=["record_patient_id"])
    return member
