"""Dunning: a failed invoice opens one case; the scheduled run works off its due steps (retries,
messages, exhaustion); a payment closes it. Every change is an Event on the member's timeline, in
the same transaction. Calls to the processor and messages to the member leave through the outbox
(events DUNNING_RETRY and DUNNING_MESSAGE), so they happen after commit, once, and only in the
`dunning` automation stage or above (below it they are recorded as shadowed).

Hand-off points for the processor side (no vendor knowledge here):
- `open_case_for_failure(...)`  on every failed charge of an invoice (duplicates welcome);
- `close_case_for_payment(...)` on every paid invoice (ours or the processor's retries, or the
  member paying after a card update);
- `retry_after_card_update(...)` when the processor reports a new default card for the member;
- `cancel_case_for_invoice(...)` when the invoice is voided / written off.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min

from billing.models import (
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningMessage,
    DunningPolicy,
    DunningStep,
    ExhaustedAction,
    MESSAGE_STATUS_RANK,
    MessageChannel,
    MessageStatus,
    StepKind,
    StepStatus,
)
from memberships.failures import error_text, log_failure
from memberships import services as ledger
from memberships.models import AutomationStage, EventKind, Member, Membership, MembershipStatus
from memberships.services import Actor

from .declines import is_hard_decline
from .errors import CaseClosed
from .policy import current_policy
from .quiet import quiet_until
from .rendering import render_email, render_sms

logger = logging.getLogger(__name__)

SYSTEM = Actor.system("dunning")
# A message or the exhaustion of a step waits for that step's retry result, at most this long
# (the processor may be down: the outbox keeps retrying the call meanwhile).
RETRY_RESULT_WAIT = timedelta(hours=6)
# The decline code of a retry that never reached the processor (its delivery was dead-lettered).
PROCESSOR_UNREACHABLE = "processor_unreachable"
CARD_UPDATE_STEP_BASE = 100
MANUAL_STEP_BASE = 200
OPENABLE = (MembershipStatus.ACTIVE, MembershipStatus.PENDING, MembershipStatus.PAST_DUE, MembershipStatus.LAPSED)


def _event(case: DunningCase, *, kind: str, summary: str, payload: dict, now: datetime,
           actor: Actor = SYSTEM) -> None:
    ledger.record_event(membership=case.membership, member=case.member, kind=kind, summary=summary,
                        payload={"case_id": case.pk, "invoice_ref": case.invoice_ref, **payload},
                        actor=actor, now=now)


def _stage_allows_member_effects(case: DunningCase) -> bool:
    return case.practice.stage_at_least(AutomationStage.DUNNING)


def _refresh_next_action(case: DunningCase) -> None:
    next_at = case.steps.filter(status=StepStatus.PENDING).aggregate(m=Min("due_at"))["m"]
    DunningCase.objects.filter(pk=case.pk).update(next_action_at=next_at)
    case.next_action_at = next_at


def _lock_case(case_id: int) -> DunningCase:
    return (DunningCase.objects.select_for_update(of=("self",))
            .select_related("practice", "member__practice", "member__home_location", "membership", "policy")
            .get(pk=case_id))


def _plan_steps(case: DunningCase, policy: DunningPolicy) -> None:
    steps = []
    channels = list(policy.step_channels) + ["none"] * len(policy.retry_offsets_days)
    for number, offset in enumerate(policy.retry_offsets_days):
        due = case.opened_at + timedelta(days=offset)
        if offset > 0 and not case.hard and not policy.use_processor_retries:
            steps.append(DunningStep(case=case, key=f"step{number}:retry", number=number, kind=StepKind.RETRY,
                                     due_at=due))
        if channels[number] in ("sms", "both"):
            steps.append(DunningStep(case=case, key=f"step{number}:sms", number=number, kind=StepKind.SMS, due_at=due))
        if channels[number] in ("email", "both"):
            steps.append(DunningStep(case=case, key=f"step{number}:email", number=number, kind=StepKind.EMAIL,
                                     due_at=due))
    steps.append(DunningStep(case=case, key="exhaust", number=len(policy.retry_offsets_days), kind=StepKind.EXHAUST,
                             due_at=case.opened_at + timedelta(days=policy.exhaust_offset_days)))
    DunningStep.objects.bulk_create(steps)


def _stop_retries(case: DunningCase, *, decline_code: str, now: datetime) -> None:
    """Hard decline: no more automatic retries; the messages go on asking for a new card."""
    case.hard = True
    case.decline_code = decline_code or case.decline_code
    case.save(update_fields=["hard", "decline_code"])
    skipped = (DunningStep.objects.filter(case=case, status=StepStatus.PENDING, kind=StepKind.RETRY,
                                          number__lt=CARD_UPDATE_STEP_BASE)
               .update(status=StepStatus.SKIPPED, done_at=now, note="hard decline: no automatic retries"))
    _event(case, kind=EventKind.DUNNING, now=now,
           summary=f"Hard decline ({case.decline_code or 'unknown'}): retries stopped; asking for a new card",
           payload={"decline_code": case.decline_code, "retries_skipped": skipped})
    _refresh_next_action(case)


def open_case_for_failure(*, membership: Membership, invoice_ref: str, amount_cents: int, currency: str = "usd",
                          decline_code: str = "", hard: bool | None = None, now: datetime,
                          failed_at: datetime | None = None, mark_past_due: bool = True) -> DunningCase | None:
    """Open the invoice's dunning case, or fold a repeated / late failure webhook into it.

    One case per (practice, invoice) whatever the number and order of failure webhooks; a failure
    for an already closed case changes nothing. Returns None when the membership is not one that
    dunning applies to (cancelled or paused)."""
    if not invoice_ref:
        raise ValueError("invoice_ref is required")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 0:
        raise ValueError("amount_cents must be a whole number of cents, at least 0")
    hard = is_hard_decline(decline_code) if hard is None else hard
    failed_at = failed_at or now
    practice_id = membership.member.practice_id

    def fold_into(case_id: int) -> DunningCase:
        case = _lock_case(case_id)
        case.failure_count += 1
        fields = ["failure_count"]
        if failed_at >= case.last_failure_at:
            case.last_failure_at = failed_at
            fields.append("last_failure_at")
            if decline_code and not case.hard:
                case.decline_code = decline_code
                fields.append("decline_code")
        case.save(update_fields=fields)
        if case.status == DunningCaseStatus.OPEN and hard and not case.hard:
            _stop_retries(case, decline_code=decline_code, now=now)
        return case

    with transaction.atomic():
        existing = DunningCase.objects.filter(practice_id=practice_id, invoice_ref=invoice_ref).values_list(
            "pk", flat=True).first()
        if existing is not None:
            return fold_into(existing)
        locked = Membership.objects.select_for_update(of=("self",)).select_related(
            "member__practice").get(pk=membership.pk)
        if locked.status not in OPENABLE:
            logger.info("no dunning case for membership %s (status %s)", locked.pk, locked.status)
            return None
        policy = current_policy(practice=locked.member.practice, now=now)
        try:
            with transaction.atomic():
                case = DunningCase.objects.create(
                    practice_id=practice_id, member=locked.member, membership=locked, policy=policy,
                    invoice_ref=invoice_ref, amount_cents=amount_cents, currency=currency.lower(),
                    decline_code=decline_code, hard=hard, last_failure_at=failed_at, opened_at=now,
                )
        except IntegrityError:  # a concurrent twin opened it first
            existing = DunningCase.objects.get(practice_id=practice_id, invoice_ref=invoice_ref)
            return fold_into(existing.pk)
        case = _lock_case(case.pk)
        _plan_steps(case, policy)
        _event(case, kind=EventKind.DUNNING_OPENED, now=now,
               summary=(f"Dunning opened: {case.currency.upper()} {amount_cents / 100:,.2f} declined"
                        f" ({decline_code or 'no code'}, {'hard' if hard else 'soft'}); policy v{policy.version}"),
               payload={"policy_id": policy.pk, "policy_version": policy.version, "amount_cents": amount_cents,
                        "currency": case.currency, "decline_code": decline_code, "hard": hard})
        if not locked.member.email and not locked.member.can_receive_sms:
            _event(case, kind=EventKind.DUNNING, now=now,
                   summary="No message can reach this member (no SMS consent, no email): call them",
                   payload={"unreachable": True})
        if mark_past_due and locked.status in (MembershipStatus.ACTIVE, MembershipStatus.PENDING):
            ledger.mark_past_due(membership=locked, actor=SYSTEM, idempotency_key=f"dunning:past-due:{case.pk}",
                                 now=now, invoice_ref=invoice_ref)
        ledger.set_chart_flag(member=case.member, membership=locked, source="dunning", source_ref=case.flag_ref,
                              text=policy.flag_text, reason="card_declined", actor=SYSTEM, now=now)
        _refresh_next_action(case)
        return case


def _finish_case(case: DunningCase, *, status: str, reason: str, now: datetime, actor: Actor = SYSTEM) -> None:
    case.status = status
    case.closed_at = now
    case.close_reason = reason[:200]
    case.next_action_at = None
    case.save(update_fields=["status", "closed_at", "close_reason", "next_action_at"])
    DunningStep.objects.filter(case=case, status=StepStatus.PENDING).update(
        status=StepStatus.SKIPPED, done_at=now, note=f"case {status}")
    _event(case, kind=EventKind.DUNNING_CLOSED, now=now, actor=actor,
           summary=f"Dunning {status}: {reason}"[:300], payload={"status": status, "policy_version": case.policy.version})


def _other_open_cases(case: DunningCase) -> bool:
    return DunningCase.objects.filter(membership_id=case.membership_id, status=DunningCaseStatus.OPEN).exclude(
        pk=case.pk).exists()


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
    case = _lock_case(case_id)
    if case.status == DunningCaseStatus.CANCELLED:
        return case
    if case.status == DunningCaseStatus.OPEN:
        _finish_case(case, status=DunningCaseStatus.RECOVERED, reason=f"invoice paid ({source})", now=now)
    ledger.clear_chart_flag(source_ref=case.flag_ref, actor=SYSTEM, now=now, reason="payment recovered")
    membership = Membership.objects.get(pk=case.membership_id)
    if membership.status in (MembershipStatus.PAST_DUE, MembershipStatus.LAPSED) and not _other_open_cases(case):
        ledger.mark_recovered(membership=membership, actor=SYSTEM, idempotency_key=f"dunning:recovered:{case.pk}",
                              now=now, invoice_ref=case.invoice_ref)
    return case


@transaction.atomic
def cancel_case(*, case: DunningCase, actor: Actor, now: datetime, reason: str) -> DunningCase:
    """Stop chasing (invoice voided, membership cancelled, staff decision): flag cleared, steps skipped."""
    case = _lock_case(case.pk)
    if case.status != DunningCaseStatus.OPEN:
        return case
    _finish_case(case, status=DunningCaseStatus.CANCELLED, reason=reason or "cancelled", now=now, actor=actor)
    ledger.clear_chart_flag(source_ref=case.flag_ref, actor=actor, now=now, reason="dunning cancelled")
    return case


def cancel_cases_of_membership(*, membership: Membership, now: datetime, reason: str) -> int:
    """Every open case of a membership that has ended: cancelled, flags cleared."""
    cases = list(DunningCase.objects.filter(membership=membership, status=DunningCaseStatus.OPEN))
    for case in cases:
        cancel_case(case=case, actor=SYSTEM, now=now, reason=reason)
    return len(cases)


def cancel_case_for_invoice(*, invoice_ref: str, now: datetime, reason: str = "invoice voided",
                            practice_id: int | None = None) -> DunningCase | None:
    cases = DunningCase.objects.filter(invoice_ref=invoice_ref, status=DunningCaseStatus.OPEN)
    if practice_id is not None:
        cases = cases.filter(practice_id=practice_id)
    case = cases.first()
    return cancel_case(case=case, actor=SYSTEM, now=now, reason=reason) if case else None


# --- the scheduled run ---------------------------------------------------------------------------

def run_dunning(*, now: datetime, limit: int = 500) -> dict[str, int]:
    """Work off every pending step that is due, oldest first. The due work is in `DunningStep`, so
    a lost or repeated task is harmless: the next run finds the same rows. Safe in several workers
    at once (row locks, SKIP LOCKED) and when run twice. A step that raises (bad data such as a
    time zone that does not exist, or a bug) is undone, logged by ids and noted on the step, which
    stays pending and is due again at the next run; the other cases go on."""
    counts: dict[str, int] = {}
    due = list(
        DunningStep.objects.filter(status=StepStatus.PENDING, due_at__lte=now, case__status=DunningCaseStatus.OPEN)
        .order_by("due_at", "number", "id").values_list("pk", flat=True)[:limit]
    )
    for step_id in due:
        try:
            outcome = run_step(step_id, now=now)
        except Exception as exc:
            log_failure(logger, "dunning step %s failed; the run goes on", step_id, exc=exc)
            # Tried again at the next run, behind the steps that are due by then: a step that keeps
            # failing never crowds the others out of a run's `limit`.
            DunningStep.objects.filter(pk=step_id, status=StepStatus.PENDING).update(
                note=f"failed, tried again next run: {error_text(exc)}"[:200],
                due_at=now + timedelta(minutes=settings.DUNNING_RUN_EVERY_MINUTES))
            outcome = "failed"
        if outcome:
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


@transaction.atomic
def run_step(step_id: int, *, now: datetime) -> str | None:
    step = (DunningStep.objects.select_for_update(skip_locked=True)
            .filter(pk=step_id, status=StepStatus.PENDING, due_at__lte=now).first())
    if step is None:
        return None
    case = _lock_case(step.case_id)
    if case.status != DunningCaseStatus.OPEN:
        _done(step, now=now, status=StepStatus.SKIPPED, note=f"case {case.status}")
        return "skipped"
    if case.membership.status == MembershipStatus.CANCELLED:
        # Cancelled meanwhile (by staff or the processor): nothing left to chase.
        _finish_case(case, status=DunningCaseStatus.CANCELLED, reason="membership cancelled", now=now)
        ledger.clear_chart_flag(source_ref=case.flag_ref, actor=SYSTEM, now=now, reason="membership cancelled")
        return "cancelled"
    if step.kind == StepKind.RETRY:
        outcome = _run_retry(case, step, now=now)
    elif step.kind in (StepKind.SMS, StepKind.EMAIL):
        outcome = _run_message(case, step, now=now)
    else:
        outcome = _run_exhaust(case, step, now=now)
    _refresh_next_action(case)
    return outcome


def _done(step: DunningStep, *, now: datetime, status: str = StepStatus.DONE, note: str = "") -> None:
    step.status, step.done_at, step.note = status, now, note[:200]
    step.save(update_fields=["status", "done_at", "note"])


def _waiting_for_retry(case: DunningCase, *, number: int | None, now: datetime) -> bool:
    attempts = DunningAttempt.objects.filter(case=case, status=AttemptStatus.REQUESTED,
                                             requested_at__gt=now - RETRY_RESULT_WAIT)
    if number is not None:
        attempts = attempts.filter(step__number=number)
    return attempts.exists()


def _run_retry(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    if case.hard and step.number < CARD_UPDATE_STEP_BASE:
        _done(step, now=now, status=StepStatus.SKIPPED, note="hard decline: no automatic retries")
        return "skipped"
    number = DunningAttempt.objects.filter(case=case).count() + 1
    shadowed = not _stage_allows_member_effects(case)
    attempt = DunningAttempt.objects.create(
        case=case, step=step, number=number, idempotency_key=f"medspa-dunning-{case.pk}-retry-{number}",
        status=AttemptStatus.SHADOWED if shadowed else AttemptStatus.REQUESTED, requested_at=now,
        finished_at=now if shadowed else None,
    )
    why = "card updated" if step.number >= CARD_UPDATE_STEP_BASE else f"step {step.number}"
    _event(case, kind=EventKind.DUNNING_RETRY, now=now,
           summary=(f"Would have retried the payment (retry {number}, {why}): stage below dunning" if shadowed
                    else f"Payment retry {number} requested ({why})"),
           payload={"attempt_id": attempt.pk, "attempt_number": number, "idempotency_key": attempt.idempotency_key,
                    "amount_cents": case.amount_cents, "currency": case.currency, "shadowed": shadowed})
    _done(step, now=now, note=f"retry {number}" + (" (shadowed)" if shadowed else ""))
    return "retry_shadowed" if shadowed else "retry"


def _has_sibling(case: DunningCase, step: DunningStep, kind: str) -> bool:
    return DunningStep.objects.filter(case=case, number=step.number, kind=kind).exists()


def _run_message(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    if _waiting_for_retry(case, number=step.number, now=now):
        return "waiting"
    member = case.member
    channel = MessageChannel.SMS if step.kind == StepKind.SMS else MessageChannel.EMAIL
    reason = "manual" if step.number >= MANUAL_STEP_BASE else "schedule"
    if channel == MessageChannel.SMS and not member.can_receive_sms:
        if _has_sibling(case, step, StepKind.EMAIL):
            _done(step, now=now, status=StepStatus.SKIPPED, note="no SMS consent; the step's email goes instead")
            return "skipped"
        if not member.email:
            _done(step, now=now, status=StepStatus.SKIPPED, note="no SMS consent and no email address")
            return "skipped"
        channel, reason = MessageChannel.EMAIL, "fallback"
    if channel == MessageChannel.SMS:
        until = quiet_until(member=member, now=now)
        if until is not None:
            step.deferred_from = step.deferred_from or step.due_at
            step.due_at = until
            step.save(update_fields=["deferred_from", "due_at"])
            return "deferred"
    if channel == MessageChannel.EMAIL and not member.email:
        _done(step, now=now, status=StepStatus.SKIPPED, note="no email address")
        return "skipped"
    message = queue_message(case, channel=channel, reason=reason, step=step, now=now)
    _done(step, now=now, note=f"{channel} message {message.pk}" + (" (fallback)" if reason == "fallback" else ""))
    return f"{channel}_shadowed" if message.status == MessageStatus.SHADOWED else channel


def queue_message(case: DunningCase, *, channel: str, reason: str, now: datetime,
                  step: DunningStep | None = None) -> DunningMessage:
    """Render the message and hand it to the outbox (an Event); the messaging destination sends it."""
    policy = case.policy
    if channel == MessageChannel.SMS:
        subject, body = "", render_sms(policy, case)
    else:
        subject, body = render_email(policy, case)
    shadowed = not _stage_allows_member_effects(case)
    message = DunningMessage.objects.create(
        case=case, step=step, channel=channel, reason=reason, subject=subject, body=body, created_at=now,
        status=MessageStatus.SHADOWED if shadowed else MessageStatus.PENDING,
    )
    label = "SMS" if channel == MessageChannel.SMS else "Email"
    where = f"step {step.number}" if step is not None and step.number < CARD_UPDATE_STEP_BASE else reason
    _event(case, kind=EventKind.DUNNING_MESSAGE, now=now,
           summary=(f"Would have sent the card-update {label} ({where}): stage below dunning" if shadowed
                    else f"Card-update {label} queued ({where})"),
           payload={"message_id": message.pk, "channel": channel, "reason": reason, "shadowed": shadowed,
                    "step": step.number if step is not None else None})
    return message


def _run_exhaust(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    if _waiting_for_retry(case, number=None, now=now):
        return "waiting"
    policy = case.policy
    _done(step, now=now)
    _finish_case(case, status=DunningCaseStatus.EXHAUSTED, now=now,
                 reason=f"payment not recovered; {policy.get_exhausted_action_display().lower()}")
    membership = Membership.objects.get(pk=case.membership_id)
    if _other_open_cases(case):
        return "exhausted"
    if membership.status == MembershipStatus.PAST_DUE:
        membership = ledger.mark_lapsed(membership=membership, actor=SYSTEM, now=now,
                                        idempotency_key=f"dunning:lapsed:{case.pk}",
                                        reason="dunning exhausted: entitlements paused until paid")
    if policy.exhausted_action == ExhaustedAction.CANCEL and membership.status != MembershipStatus.CANCELLED:
        ledger.cancel_membership(membership=membership, actor=SYSTEM, now=now,
                                 idempotency_key=f"dunning:cancel:{case.pk}", reason="Payment not recovered")
    return "exhausted"


# --- results coming back from the edges ------------------------------------------------------------

@transaction.atomic
def record_retry_result(*, attempt_id: int, paid: bool, now: datetime, decline_code: str = "",
                        unreachable: bool = False) -> DunningAttempt:
    """The processor answered a retry (or, `unreachable`, never could: its delivery was dead-lettered).
    Paid closes the case; a hard decline stops further retries; an unreachable retry is a failed
    attempt and the case goes on to its next step (or its exhaustion). A replay (the outbox
    delivering twice) changes nothing."""
    attempt = DunningAttempt.objects.select_for_update().get(pk=attempt_id)
    if attempt.status != AttemptStatus.REQUESTED:
        return attempt
    case = _lock_case(attempt.case_id)
    if unreachable:
        paid, decline_code = False, PROCESSOR_UNREACHABLE
    attempt.status = AttemptStatus.PAID if paid else AttemptStatus.FAILED
    attempt.decline_code = "" if paid else (decline_code or "")[:60]
    attempt.finished_at = now
    attempt.save(update_fields=["status", "decline_code", "finished_at"])
    if unreachable:
        summary = f"Payment retry {attempt.number} could not reach the processor; the case goes on"
    elif paid:
        summary = f"Payment retry {attempt.number} succeeded"
    else:
        summary = f"Payment retry {attempt.number} declined ({attempt.decline_code or 'no code'})"
    _event(case, kind=EventKind.DUNNING_ATTEMPT, now=now, summary=summary,
           payload={"attempt_id": attempt.pk, "attempt_number": attempt.number, "paid": paid,
                    "decline_code": attempt.decline_code, "unreachable": unreachable})
    if paid:
        close_case_for_payment(invoice_ref=case.invoice_ref, practice_id=case.practice_id, now=now, source="retry")
    elif case.status == DunningCaseStatus.OPEN and is_hard_decline(decline_code) and not case.hard:
        _stop_retries(case, decline_code=decline_code, now=now)
    return attempt


@transaction.atomic
def rearm_unreachable_retry(*, attempt_id: int, now: datetime) -> DunningAttempt | None:
    """A manager redelivers a dead-lettered retry: the attempt recorded as unreachable is requested
    again (same idempotency key: never charged twice). None when the case is closed or hard (no
    automatic retries then) or the attempt did reach the processor."""
    attempt = DunningAttempt.objects.select_for_update().get(pk=attempt_id)
    case = _lock_case(attempt.case_id)
    if (attempt.status != AttemptStatus.FAILED or attempt.decline_code != PROCESSOR_UNREACHABLE
            or case.status != DunningCaseStatus.OPEN or case.hard):
        return None
    attempt.status, attempt.decline_code, attempt.finished_at = AttemptStatus.REQUESTED, "", None
    attempt.save(update_fields=["status", "decline_code", "finished_at"])
    _event(case, kind=EventKind.DUNNING, now=now, summary=f"Payment retry {attempt.number} redelivered",
           payload={"attempt_id": attempt.pk, "attempt_number": attempt.number})
    return attempt


def _card_step_key(payment_method_ref: str) -> str:
    """One card-update retry per new card and case (the step key is unique per case)."""
    return "card:" + hashlib.sha256(payment_method_ref.encode()).hexdigest()[:24] + ":retry"


@transaction.atomic
def retry_after_card_update(*, case: DunningCase, payment_method_ref: str, now: datetime,
                            source: str = "card_update") -> DunningStep | None:
    """The processor reports a new default card (`payment_method_ref`) for the member: pay the open
    invoice now, hard declines too. Once per card and case, at most DUNNING_CARD_UPDATE_RETRIES per
    case, and one waiting at a time (it charges whatever card is the default when it runs). None
    when the case is closed, the card was tried already, or the case has used up its card-update
    retries (staff see that on the timeline)."""
    if not payment_method_ref:
        raise ValueError("payment_method_ref is required: only a card the processor reports triggers a retry")
    case = _lock_case(case.pk)
    if case.status != DunningCaseStatus.OPEN:
        return None
    card_steps = DunningStep.objects.filter(case=case, number__gte=CARD_UPDATE_STEP_BASE, number__lt=MANUAL_STEP_BASE)
    key = _card_step_key(payment_method_ref)
    if card_steps.filter(key=key).exists():
        return None
    pending = card_steps.filter(kind=StepKind.RETRY, status=StepStatus.PENDING).first()
    if pending is not None:
        return pending
    used = card_steps.count()
    limit = settings.DUNNING_CARD_UPDATE_RETRIES
    if used >= limit:
        _event(case, kind=EventKind.DUNNING, now=now,
               summary=f"Card updated again: no retry (this case has had its {limit} card-update retries)",
               payload={"source": source[:40], "card_update_retries": used})
        return None
    step = DunningStep.objects.create(case=case, key=key, number=CARD_UPDATE_STEP_BASE + used + 1,
                                      kind=StepKind.RETRY, due_at=now, note=f"{source} {payment_method_ref}"[:200])
    _event(case, kind=EventKind.DUNNING, now=now, summary="Card updated: payment retry scheduled now",
           payload={"step_id": step.pk, "source": source[:40]})
    _refresh_next_action(case)
    return step


def retry_open_cases_after_card_update(*, member: Member, payment_method_ref: str, now: datetime,
                                       source: str = "card_update") -> list[DunningStep]:
    """Hand-off for the processor's report that the member's default card changed."""
    steps = []
    for case in DunningCase.objects.filter(member=member, status=DunningCaseStatus.OPEN):
        step = retry_after_card_update(case=case, payment_method_ref=payment_method_ref, now=now, source=source)
        if step is not None:
            steps.append(step)
    return steps


def _fallback_email(message: DunningMessage, *, now: datetime) -> DunningMessage | None:
    """An SMS that cannot go (opt-out) becomes an email, unless that step already sends one."""
    case = message.case
    if not case.member.email or case.status != DunningCaseStatus.OPEN:
        return None
    if message.step_id is not None and (
        DunningMessage.objects.filter(step__case=case, step__number=message.step.number,
                                      channel=MessageChannel.EMAIL).exists()
        or DunningStep.objects.filter(case=case, number=message.step.number, kind=StepKind.EMAIL,
                                      status=StepStatus.PENDING).exists()
    ):
        return None
    return queue_message(case, channel=MessageChannel.EMAIL, reason="fallback", step=message.step, now=now)


def _lock_message(message_id: int) -> DunningMessage:
    return (DunningMessage.objects.select_for_update(of=("self",))
            .select_related("case__member__practice", "case__practice", "case__policy", "case__membership", "step")
            .get(pk=message_id))


def _move_status(message: DunningMessage, status: str, *, now: datetime) -> bool:
    if MESSAGE_STATUS_RANK.get(status, 0) <= MESSAGE_STATUS_RANK.get(message.status, 0):
        return False
    message.status = status
    message.status_updated_at = now
    return True


@transaction.atomic
def record_message_sent(*, message_id: int, provider_id: str = "", status: str = MessageStatus.SENT,
                        now: datetime) -> DunningMessage:
    message = _lock_message(message_id)
    if message.sent_at is not None:
        return message
    _move_status(message, status if status in MessageStatus.values else MessageStatus.SENT, now=now)
    message.provider_id = provider_id[:100]
    message.sent_at = now
    message.save(update_fields=["status", "status_updated_at", "provider_id", "sent_at"])
    label = "SMS" if message.channel == MessageChannel.SMS else "Email"
    _event(message.case, kind=EventKind.MESSAGE_SENT, now=now, summary=f"Card-update {label} sent",
           payload={"message_id": message.pk, "channel": message.channel, "reason": message.reason})
    return message


@transaction.atomic
def record_message_undeliverable(*, message_id: int, now: datetime, error_code: str = "",
                                 opted_out: bool = False, note: str = "") -> DunningMessage:
    """The message could not go: the recipient opted out (STOP, or Twilio 21610: recorded at once,
    and the step falls back to email), or the provider refused it for good."""
    message = _lock_message(message_id)
    if message.status in (MessageStatus.FAILED, MessageStatus.SKIPPED):
        return message
    if message.sent_at is None and opted_out:
        message.status = MessageStatus.SKIPPED
    else:
        message.status = MessageStatus.FAILED
    message.error_code = error_code[:20]
    message.status_updated_at = now
    message.save(update_fields=["status", "error_code", "status_updated_at"])
    case = message.case
    _event(case, kind=EventKind.DUNNING, now=now,
           summary=f"{message.get_channel_display()} not delivered" + (f" ({note or error_code})" if (note or error_code) else ""),
           payload={"message_id": message.pk, "error_code": error_code[:20], "opted_out": opted_out})
    if opted_out and message.channel == MessageChannel.SMS:
        ledger.record_sms_opt_out(member=case.member, actor=Actor.system("sms"), now=now,
                                  source=f"twilio {error_code}" if error_code else "opt-out")
        case.member.refresh_from_db()
        _fallback_email(message, now=now)
    return message


@transaction.atomic
def record_message_status(*, provider_id: str, status: str, now: datetime, error_code: str = "") -> DunningMessage | None:
    """A delivery status callback: recorded, moving the status only forward (callbacks come
    unordered and repeated). Unknown message ids are ignored (None)."""
    message_id = DunningMessage.objects.filter(provider_id=provider_id).values_list("pk", flat=True).first()
    if message_id is None or not provider_id:
        return None
    message = _lock_message(message_id)
    changed = _move_status(message, status, now=now) if status in MessageStatus.values else False
    if error_code and changed:
        message.error_code = error_code[:20]
    if changed:
        message.save(update_fields=["status", "status_updated_at", "error_code"])
    if error_code == "21610":
        ledger.record_sms_opt_out(member=message.case.member, actor=Actor.system("sms"), now=now,
                                  source="twilio 21610")
        message.case.member.refresh_from_db()
        _fallback_email(message, now=now)
    return message


# --- staff actions (the dunning queue page) ---------------------------------------------------------

def _manual_step(case: DunningCase, kind: str, *, now: datetime) -> DunningStep:
    n = DunningStep.objects.filter(case=case, number__gte=MANUAL_STEP_BASE).count() + 1
    return DunningStep.objects.create(case=case, key=f"manual-{n}:{kind}", number=MANUAL_STEP_BASE + n, kind=kind,
                                      due_at=now)


@transaction.atomic
def resend_card_link(case: DunningCase, actor: Actor, now: datetime) -> list[DunningMessage]:
    """Send the card-update link again now, by SMS (with consent; outside quiet hours, else at their
    end) and by email. Raises CaseClosed for a closed case."""
    case = _lock_case(case.pk)
    if case.status != DunningCaseStatus.OPEN:
        raise CaseClosed("This case is closed; there is nothing to chase.")
    _event(case, kind=EventKind.DUNNING, now=now, actor=actor, summary="Card-update link resent by staff", payload={})
    made = []
    kinds = [StepKind.EMAIL] + ([StepKind.SMS] if case.member.can_receive_sms else [])
    for kind in kinds:
        step = _manual_step(case, kind, now=now)
        _run_message(case, step, now=now)
        made += list(DunningMessage.objects.filter(step=step))
    _refresh_next_action(case)
    return made


@transaction.atomic
def mark_contacted(case: DunningCase, actor: Actor, note: str, now: datetime) -> DunningCase:
    """Staff reached the member (phone call, at the desk): noted on the timeline."""
    case = _lock_case(case.pk)
    note = (note or "").strip()
    case.last_contacted_at = now
    case.save(update_fields=["last_contacted_at"])
    _event(case, kind=EventKind.DUNNING, now=now, actor=actor,
           summary=("Member contacted" + (f": {note}" if note else ""))[:300], payload={"contacted": True})
    return case
