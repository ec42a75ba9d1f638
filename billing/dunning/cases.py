"""Dunning cases and their state: a failed invoice opens one case (a repeated or late failure folds
into it), a payment closes it (recovered), staff or the processor cancel it. Every change is an
Event on the member's timeline, in the same transaction. Also the helpers the other dunning modules
share: the case's lock, its events, its steps' bookkeeping.

Hand-off points for the processor side (no vendor knowledge here):
- `opening.open_case_for_failure(...)` on every failed charge of an invoice (duplicates welcome;
  opening, for one failure or a sweep's many, is `opening`);
- `close_case_for_payment(...)` on every paid invoice (ours or the processor's retries, or the
  member paying after a card update);
- `forgive_case_for_invoice(...)` when the processor voids, cancels or writes off the invoice (no payment
  expected: forgiven or written off, never recovered);
- `cancel_case_for_invoice(...)` when staff stop chasing an invoice;
- `cancel_cases_of_membership(...)` when the processor ended the subscription.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Min, OuterRef, Subquery

from billing.models import DunningCase, DunningCaseStatus, DunningStep, StepKind, StepStatus
from memberships import services as ledger
from memberships.models import AutomationStage, Event, EventKind, Member, Membership, MembershipStatus
from memberships.services import Actor
from memberships.services import sql as rows
from memberships.services.common import record_events
from memberships.services.stages import location_stage_at_least

logger = logging.getLogger(__name__)

SYSTEM = Actor.system("dunning")
# Step numbers: the policy's offsets count from 0; a retry after a card update is numbered from
# CARD_UPDATE_STEP_BASE, a step staff asked for from MANUAL_STEP_BASE.
CARD_UPDATE_STEP_BASE = 100
MANUAL_STEP_BASE = 200


# --- what every dunning module shares -------------------------------------------------------------

def case_event(case: DunningCase, *, kind: str, summary: str, payload: dict, now: datetime,
               actor: Actor = SYSTEM) -> Event:
    """A timeline event of the case (unsaved): the case and its invoice in the payload."""
    event = Event(practice_id=case.member.practice_id, member=case.member, membership=case.membership, kind=kind,
                  summary=summary[:300], payload={"case_id": case.pk, "invoice_ref": case.invoice_ref, **payload},
                  actor_type=actor.type, actor_user_id=actor.user_id, created_at=now)
    if Member._meta.get_field("practice").is_cached(case.member):
        event.practice = case.member.practice  # the outbox fan-out reads it: spare it a query
    return event


def record_case_event(case: DunningCase, *, kind: str, summary: str, payload: dict, now: datetime,
                      actor: Actor = SYSTEM) -> None:
    record_events([case_event(case, kind=kind, summary=summary, payload=payload, now=now, actor=actor)])


def stage_allows_member_effects(case: DunningCase) -> bool:
    """Messages and retries follow the stage of the member's home location (else the practice's)."""
    member = case.member
    return location_stage_at_least(case.practice, member.home_location if member.home_location_id else None,
                                   AutomationStage.DUNNING)


def refresh_next_action(case: DunningCase) -> None:
    next_at = case.steps.filter(status=StepStatus.PENDING).aggregate(m=Min("due_at"))["m"]
    DunningCase.objects.filter(pk=case.pk).update(next_action_at=next_at)
    case.next_action_at = next_at


STEP_FIELDS = (("status", "text"), ("done_at", "timestamptz"), ("note", "text"), ("due_at", "timestamptz"),
               ("deferred_from", "timestamptz"))


def save_steps(steps: list[DunningStep]) -> None:
    """Many steps' status, done_at, note, due_at and deferred_from, in one statement."""
    if not steps:
        return
    if connection.vendor != "postgresql":
        DunningStep.objects.bulk_update(steps, [name for name, _ in STEP_FIELDS])
        return
    rows.update_from_values(DunningStep, [(step.pk, *(getattr(step, name) for name, _ in STEP_FIELDS)) for step in steps],
                            set_sql=", ".join(f"{name} = v.{name}" for name, _ in STEP_FIELDS), columns=list(STEP_FIELDS))


def refresh_next_actions(case_ids: list[int]) -> None:
    """`refresh_next_action` for many cases, in one statement."""
    earliest = (DunningStep.objects.filter(case_id=OuterRef("pk"), status=StepStatus.PENDING).order_by()
                .values("case_id").annotate(m=Min("due_at")).values("m"))
    DunningCase.objects.filter(pk__in=case_ids).update(next_action_at=Subquery(earliest))


def lock_case(case_id: int) -> DunningCase:
    return (DunningCase.objects.select_for_update(of=("self",))
            .select_related("practice", "member__practice", "member__home_location", "membership", "policy")
            .get(pk=case_id))


def finish_step(step: DunningStep, *, now: datetime, status: str = StepStatus.DONE, note: str = "") -> None:
    step.status, step.done_at, step.note = status, now, note[:200]
    step.save(update_fields=["status", "done_at", "note"])


def stop_retries(case: DunningCase, *, decline_code: str, now: datetime) -> None:
    """Hard decline: no more automatic retries; the messages go on asking for a new card."""
    case.hard = True
    case.decline_code = decline_code or case.decline_code
    case.save(update_fields=["hard", "decline_code"])
    skipped = (DunningStep.objects.filter(case=case, status=StepStatus.PENDING, kind=StepKind.RETRY,
                                          number__lt=CARD_UPDATE_STEP_BASE)
               .update(status=StepStatus.SKIPPED, done_at=now, note="hard decline: no automatic retries"))
    summary = f"Hard decline ({case.decline_code or 'unknown'}): retries stopped; asking for a new card"
    record_case_event(case, kind=EventKind.DUNNING, now=now, summary=summary,
                      payload={"decline_code": case.decline_code, "retries_skipped": skipped})
    refresh_next_action(case)


def other_open_cases(case: DunningCase) -> bool:
    return DunningCase.objects.filter(membership_id=case.membership_id, status=DunningCaseStatus.OPEN).exclude(
        pk=case.pk).exists()


def finish_case(case: DunningCase, *, status: str, reason: str, now: datetime, actor: Actor = SYSTEM,
                summary: str = "", payload: dict | None = None) -> None:
    case.status = status
    case.closed_at = now
    case.close_reason = reason[:200]
    case.next_action_at = None
    case.save(update_fields=["status", "closed_at", "close_reason", "next_action_at"])
    DunningStep.objects.filter(case=case, status=StepStatus.PENDING).update(
        status=StepStatus.SKIPPED, done_at=now, note=f"case {status}")
    record_case_event(case, kind=EventKind.DUNNING_CLOSED, now=now, actor=actor,
                      summary=(summary or f"Payment follow-up ended ({status}): {reason}")[:300],
                      payload={"status": status, "policy_version": case.policy.version, **(payload or {})})


# --- closing ----------------------------------------------------------------------------------------

@transaction.atomic
def close_case_for_payment(*, invoice_ref: str, now: datetime, practice_id: int | None = None,
                           source: str = "processor") -> DunningCase | None:
    """The invoice is paid (by our retry, the processor's, or the member after a card update): the
    case is recovered, the chart flag cleared, the membership active again. Also after exhaustion
    (late payment: flag cleared, lapsed membership recovered). A replay changes nothing."""
    cases = DunningCase.objects.filter(invoice_ref=invoice_ref)
    if practice_id is not None:
        cases = cases.filter(practice_id=practice_id)
    case_id = cases.values_list("pk", flat=True).first()
    if case_id is None:
        return None
    case = lock_case(case_id)
    if case.status == DunningCaseStatus.CANCELLED:
        return case
    if case.status in (DunningCaseStatus.OPEN, DunningCaseStatus.WRITTEN_OFF):    # a debt written off, paid after all
        # Paid after the write-off: the membership may be active again already (no RECOVERED event to
        # come), so the case's end names the invoice for the dashboard's recovered dollars.
        written_off = ({"invoice_ref": case.invoice_ref, "paid_after_write_off": True}
                       if case.status == DunningCaseStatus.WRITTEN_OFF else None)
        finish_case(case, status=DunningCaseStatus.RECOVERED, reason=f"invoice paid ({source})", now=now,
                    payload=written_off)
    ledger.clear_chart_flag(source_ref=case.flag_ref, actor=SYSTEM, now=now, reason="payment recovered")
    membership = Membership.objects.get(pk=case.membership_id)
    if membership.status in (MembershipStatus.PAST_DUE, MembershipStatus.LAPSED) and not other_open_cases(case):
        ledger.mark_recovered(membership=membership, actor=SYSTEM, idempotency_key=f"dunning:recovered:{case.pk}",
                              now=now, invoice_ref=case.invoice_ref)
    return case


@transaction.atomic
def cancel_case(*, case: DunningCase, actor: Actor, now: datetime, reason: str) -> DunningCase:
    """Stop chasing (invoice voided, membership cancelled, staff decision): flag cleared, steps skipped."""
    case = lock_case(case.pk)
    if case.status != DunningCaseStatus.OPEN:
        return case
    finish_case(case, status=DunningCaseStatus.CANCELLED, reason=reason or "cancelled", now=now, actor=actor)
    ledger.clear_chart_flag(source_ref=case.flag_ref, actor=actor, now=now, reason="dunning cancelled")
    return case


def cancel_cases_of_membership(*, membership: Membership, now: datetime, reason: str) -> int:
    """Every open case of a membership that has ended: cancelled, flags cleared."""
    cases = list(DunningCase.objects.filter(membership=membership, status=DunningCaseStatus.OPEN))
    for case in cases:
        cancel_case(case=case, actor=SYSTEM, now=now, reason=reason)
    return len(cases)


def end_cases_of_cancelled(events: list[Event]) -> None:
    """A ledger event sink, in the events' transaction (the cancellation holds the membership): the open
    cases of a membership just cancelled — at the desk ("no further charges"), on an approved request,
    at the processor — end now, their queued messages and retries with them, not at their next step
    days later. Costs nothing for any other event."""
    for event in events:
        if event.kind == EventKind.CANCELLED and event.membership_id is not None:
            cancel_cases_of_membership(membership=event.membership, now=event.created_at,
                                       reason="membership cancelled")


@transaction.atomic
def forgive_case_for_invoice(*, invoice_ref: str, practice_id: int, written_off: bool, summary: str,
                             now: datetime) -> DunningCase | None:
    """The processor will not collect the invoice (voided, cancelled, written off): its case ends
    forgiven or written off — not recovered: nothing was paid, nothing is refilled — its pending steps
    are skipped (messages not yet sent are withdrawn by the outbox), and the chart flag comes off. A
    case already ended (exhausted, cancelled) keeps its outcome; the timeline says the invoice was
    forgiven and a flag still up comes off. A void after a write-off makes the case forgiven. The
    `DUNNING_CLOSED` event carries `forgiven`, so the dashboard counts the invoice neither recovered
    nor open. A replay, or an invoice paid already, changes nothing. None: the invoice has no case."""
    status = DunningCaseStatus.WRITTEN_OFF if written_off else DunningCaseStatus.FORGIVEN
    case_id = (DunningCase.objects.filter(invoice_ref=invoice_ref, practice_id=practice_id)
               .values_list("pk", flat=True).first())
    if case_id is None:
        return None
    case = lock_case(case_id)
    if case.status == DunningCaseStatus.RECOVERED or case.status == status or (
            case.status == DunningCaseStatus.FORGIVEN and written_off):
        return case
    payload = {"forgiven": status}
    if case.status == DunningCaseStatus.OPEN:
        finish_case(case, status=status, reason=summary, now=now, summary=summary, payload=payload)
    else:
        if case.status == DunningCaseStatus.WRITTEN_OFF:     # voided after the write-off: forgiven now
            case.status, case.close_reason = status, summary[:200]
            case.save(update_fields=["status", "close_reason"])
        record_case_event(case, kind=EventKind.DUNNING_CLOSED, now=now, summary=summary,
                          payload={"status": case.status, "policy_version": case.policy.version, **payload})
    ledger.clear_chart_flag(source_ref=case.flag_ref, actor=SYSTEM, now=now, reason="no payment expected")
    return case


def cancel_case_for_invoice(*, invoice_ref: str, now: datetime, reason: str = "invoice voided",
                            practice_id: int | None = None) -> DunningCase | None:
    cases = DunningCase.objects.filter(invoice_ref=invoice_ref, status=DunningCaseStatus.OPEN)
    if practice_id is not None:
        cases = cases.filter(practice_id=practice_id)
    case = cases.first()
    return cancel_case(case=case, actor=SYSTEM, now=now, reason=reason) if case else None


# --- staff (the dunning queue page) -------------------------------------------------------------------

@transaction.atomic
def mark_contacted(case: DunningCase, actor: Actor, note: str, now: datetime) -> DunningCase:
    """Staff reached the member (phone call, at the desk): noted on the timeline."""
    case = lock_case(case.pk)
    note = (note or "").strip()
    case.last_contacted_at = now
    case.save(update_fields=["last_contacted_at"])
    record_case_event(case, kind=EventKind.DUNNING, now=now, actor=actor,
                      summary=("Member contacted" + (f": {note}" if note else ""))[:300], payload={"contacted": True})
    return case
