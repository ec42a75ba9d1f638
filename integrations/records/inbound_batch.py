"""The record's webhooks of one inbox batch, applied together.

`inbound.apply_record_event` is the rule book for one record event. Most of what a record sends is
its plainest case: a treatment completed (one per webhook) by a known patient with a current
membership, on a service we know, at a practice in the `redemptions` stage, nothing held for the
appointment. The inbox hands its batch's record rows here (`prepare`, before it locks the batch's
memberships, then `apply`, under those locks):

- every row is parsed once (the adapter re-reads the record where it does); the events' members,
  services and memberships are resolved in a few queries for the whole batch;
- the plain treatments are spent together: their appointments remembered in two statements, the
  spends through the ledger's `redeem_many` (the same rules as one by one, in arrival order,
  written set-based), keyed by the appointment (`spend_key`), so a treatment delivered twice — in
  this batch, an earlier one, or another worker's — is spent once; one the balance cannot cover
  becomes a record exception, as one by one;
- everything else (bookings, cancellations, unknown patients, a held appointment, a row of several
  events, the review stage) goes one row at a time through `apply_inbound_row`, in arrival order —
  and so do the plain treatments of any membership such a row touches, so one membership's events
  keep their order.

The outcomes are set on the rows (not saved: the inbox saves the batch's outcomes in one statement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from integrations.models import InboundEvent, InboundStatus, RecordAppointment
from memberships import services
from memberships.errors import IdempotencyKeyReused
from memberships.failures import log_failure
from memberships.models import (
    AutomationStage,
    Member,
    Membership,
    MembershipStatus,
    Reservation,
    ReservationStatus,
    Service,
)
from memberships.services import redeem_batch
from memberships.services.stages import at_least, effective_stage_expression

from .base import RecordEvent, TreatmentCompleted
from .inbound import (
    TREATMENT_REASON,
    apply_inbound_row,
    exception_kind,
    hold_key,
    open_exception,
    resolve_service,
    row_adapter,
    spend_key,
)

logger = logging.getLogger(__name__)


@dataclass
class _Plain:
    """A plain treatment: its row, event and what it resolved to."""

    row: InboundEvent
    event: TreatmentCompleted
    member_id: int
    service: Service
    membership_id: int


@dataclass
class RecordBatch:
    rows: list[InboundEvent]
    parsed: dict[int, list[RecordEvent] | Exception] = field(default_factory=dict)
    plain: list[_Plain] = field(default_factory=list)
    membership_ids: set[int] = field(default_factory=set)     # every membership the rows resolve to
    mixed: set[int] = field(default_factory=set)              # memberships with events that go one by one

    def __contains__(self, row: InboundEvent) -> bool:
        return row.pk in self.parsed


def prepare(rows: list[InboundEvent], *, now: datetime) -> RecordBatch:
    """Parse the record rows (arrival order) and resolve their events, without locking anything."""
    batch = RecordBatch(rows=rows)
    adapters: dict[int, object] = {}
    for row in rows:
        try:
            adapter = adapters.get(row.source) or adapters.setdefault(row.source, row_adapter(row))
            batch.parsed[row.pk] = adapter.parse_webhook(row.payload)
        except Exception as exc:  # the row's own processing raises it again, and says what it means
            batch.parsed[row.pk] = exc
    resolved = _Resolver()
    for row in rows:
        events = batch.parsed[row.pk]
        if isinstance(events, Exception):
            continue
        for event in events:
            resolved.want(row.practice, event)
    resolved.run()
    for row in rows:
        events = batch.parsed[row.pk]
        if isinstance(events, Exception):
            continue
        found = [resolved.of(row.practice, event) for event in events]
        batch.membership_ids |= {membership_id for _, _, membership_id in found if membership_id}
        member_id, service, membership_id = found[0] if len(found) == 1 else (None, None, None)
        if (len(events) == 1 and isinstance(events[0], TreatmentCompleted) and member_id and service
                and membership_id and at_least(resolved.stages.get(member_id, row.practice.automation_stage),
                                                  AutomationStage.REDEMPTIONS)):
            batch.plain.append(_Plain(row, events[0], member_id, service, membership_id))
        else:
            batch.mixed |= {membership_id for _, _, membership_id in found if membership_id}
    return batch


class _Resolver:
    """Members (by patient id, else member number), services and current memberships of many
    events, as `inbound.resolve_member`, `inbound.resolve_service` and the ledger's
    `current_membership` find them one by one, in a few queries."""

    def __init__(self):
        self.wanted: dict[int, list[RecordEvent]] = {}
        self.practices: dict[int, object] = {}
        self.by_patient: dict[tuple[int, str], int] = {}
        self.by_number: dict[tuple[int, str], int] = {}
        self.services: dict[tuple[int, str], Service | None] = {}
        self.memberships: dict[int, int] = {}
        self.stages: dict[int, str] = {}      # member id → the effective stage of their home location

    def want(self, practice, event: RecordEvent) -> None:
        self.practices[practice.pk] = practice
        self.wanted.setdefault(practice.pk, []).append(event)

    def run(self) -> None:
        if not self.wanted:
            return
        for practice_id, events in self.wanted.items():
            patients = {e.patient_id for e in events if e.patient_id}
            stage = effective_stage_expression()      # each member's home location's stage, in the same rows
            shared = set()                            # a patient id several members are linked to: no guess
            for pk, patient, member_stage in (
                    Member.objects.filter(practice_id=practice_id, record_patient_id__in=patients)
                    .order_by("record_patient_id", "pk").annotate(stage=stage)
                    .values_list("pk", "record_patient_id", "stage")):
                if self.by_patient.setdefault((practice_id, patient), pk) != pk:
                    shared.add((practice_id, patient))
                self.stages[pk] = member_stage
            for key in shared:
                del self.by_patient[key]
            numbers = {e.member_number for e in events
                       if e.member_number and (practice_id, e.patient_id) not in self.by_patient}
            for pk, number, member_stage in Member.objects.filter(
                    practice_id=practice_id, member_number__in=numbers).annotate(stage=stage).values_list(
                    "pk", "member_number", "stage"):
                self.by_number[(practice_id, number)] = pk
                self.stages[pk] = member_stage
            for code in {e.service_code for e in events}:
                self.services[(practice_id, code)] = resolve_service(self.practices[practice_id], code)
        members = set(self.by_patient.values()) | set(self.by_number.values())
        self.memberships = dict(Membership.objects.filter(member_id__in=members)
                                .exclude(status=MembershipStatus.CANCELLED).values_list("member_id", "pk"))
        for member_id, pk in (Membership.objects.filter(member_id__in=members - self.memberships.keys(),
                                                        status=MembershipStatus.CANCELLED)
                              .order_by("member_id", "-cancelled_at", "-id").values_list("member_id", "pk")):
            self.memberships.setdefault(member_id, pk)

    def of(self, practice, event: RecordEvent) -> tuple[int | None, Service | None, int | None]:
        """(member id, service, membership id) of one event; None where nothing matches."""
        member_id = self.by_patient.get((practice.pk, event.patient_id)) if event.patient_id else None
        if member_id is None and event.member_number:
            member_id = self.by_number.get((practice.pk, event.member_number))
        service = self.services.get((practice.pk, event.service_code))
        return member_id, service, self.memberships.get(member_id) if member_id else None


def apply(batch: RecordBatch, *, now: datetime) -> None:
    """Apply the batch's record rows under the memberships' locks the caller took (`membership_ids`):
    the plain treatments together, the rest one row at a time in arrival order."""
    done = _spend_plain(batch, now=now) if batch.plain else set()
    for row in batch.rows:
        if row.pk not in done:
            apply_inbound_row(row, now=now, save=False, parsed=batch.parsed[row.pk])


def _spend_plain(batch: RecordBatch, *, now: datetime) -> set[int]:
    """Spend the plain treatments of memberships no other row of the batch touches; returns the ids
    of the rows done. If it raises, nothing of it is kept and its rows go one by one."""
    plain = [p for p in batch.plain if p.membership_id not in batch.mixed]
    if not plain:
        return set()
    try:
        with transaction.atomic():
            memberships = redeem_batch.locked_memberships(sorted({p.membership_id for p in plain}),
                                                          practices={p.row.practice_id: p.row.practice for p in plain})
            held = set(Reservation.objects.filter(
                idempotency_key__in=[hold_key(p.row.practice, p.event.appointment_id) for p in plain],
                status__in=(ReservationStatus.HELD, ReservationStatus.COMMITTED)).values_list("idempotency_key",
                                                                                            flat=True))
            mixed = {p.membership_id for p in plain
                     if p.membership_id not in memberships or hold_key(p.row.practice, p.event.appointment_id) in held}
            plain = [p for p in plain if p.membership_id not in mixed]
            _remember_completed(plain, now=now)
            outcomes = _redeem(plain, memberships, now=now)
    except Exception as exc:
        log_failure(logger, "record treatments could not be spent together; applying them one by one", exc=exc)
        return set()
    for p, outcome in zip(plain, outcomes):
        row = p.row
        row.attempts += 1
        row.status, row.error = InboundStatus.PROCESSED, outcome
        row.processed_at, row.next_attempt_at = now, None
    return {p.row.pk for p in plain}


def _remember_completed(plain: list[_Plain], *, now: datetime) -> None:
    """Each appointment remembered as completed (as `inbound.remember_appointment`), in two statements."""
    RecordAppointment.objects.bulk_create(
        [RecordAppointment(practice_id=p.row.practice_id, appointment_ref=p.event.appointment_id, first_seen_at=now,
                           completed_at=now) for p in plain], ignore_conflicts=True)
    refs: dict[int, set[str]] = {}
    for p in plain:
        refs.setdefault(p.row.practice_id, set()).add(p.event.appointment_id)
    which = Q()
    for practice_id, appointment_refs in refs.items():
        which |= Q(practice_id=practice_id, appointment_ref__in=appointment_refs)
    RecordAppointment.objects.filter(which, completed_at__isnull=True).update(completed_at=now)


def _redeem(plain: list[_Plain], memberships: dict[int, Membership], *, now: datetime) -> list[str]:
    """Spend the treatments, practice by practice (each its record's actor); a refusal becomes a
    record exception, as `inbound._hold_or_spend` files it. Returns each one's outcome."""
    outcomes: dict[int, str] = {}
    by_practice: dict[int, list[_Plain]] = {}
    for p in plain:
        by_practice.setdefault(p.row.practice_id, []).append(p)
    for items in by_practice.values():
        practice = items[0].row.practice
        results = redeem_batch.redeem_many(
            redemptions=[redeem_batch.Redemption(
                membership=memberships[p.membership_id], service=p.service, quantity=p.event.quantity,
                idempotency_key=spend_key(practice, p.event.appointment_id), reason=TREATMENT_REASON) for p in items],
            actor=services.Actor.record(practice.record_adapter), now=now)
        for p, result in zip(items, results):
            if result.replayed or isinstance(result.error, IdempotencyKeyReused):
                outcomes[id(p)] = "already_spent"
            elif result.error is not None:
                kind = exception_kind(result.error)
                open_exception(practice=practice, event=p.event, kind=kind,
                               member=memberships[p.membership_id].member, service=p.service, inbound=p.row,
                               now=now, detail=result.error.message)
                outcomes[id(p)] = f"exception:{kind}"
            else:
                outcomes[id(p)] = "redeemed"
    return [outcomes[id(p)] for p in plain]
