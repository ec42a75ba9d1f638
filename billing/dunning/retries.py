"""Payment retries of a dunning case: a retry step asks the processor (through the outbox, event
DUNNING_RETRY) to pay the open invoice again; its answer comes back here; a dead-lettered retry is
a failed attempt a manager may redeliver; a new default card the processor reports triggers a retry
at once.

Hand-off points for the processor side:
- `record_retry_result(...)` with the processor's answer to a retry (or that it never reached it);
- `retry_open_cases_after_card_update(...)` when the processor reports a new default card.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from billing.models import (
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningStep,
    StepKind,
    StepStatus,
)
from memberships.models import EventKind, Member, Membership

from .cases import (
    CARD_UPDATE_STEP_BASE,
    MANUAL_STEP_BASE,
    close_case_for_payment,
    finish_step,
    lock_case,
    record_case_event,
    refresh_next_action,
    stage_allows_member_effects,
    stop_retries,
)
from .declines import is_hard_decline

# A message or the exhaustion of a step waits for that step's retry result, at most this long
# (the processor may be down: the outbox keeps retrying the call meanwhile).
RETRY_RESULT_WAIT = timedelta(hours=6)
# The decline code of a retry that never reached the processor (its delivery was dead-lettered).
PROCESSOR_UNREACHABLE = "processor_unreachable"


def waiting_for_retry(case: DunningCase, *, number: int | None, now: datetime) -> bool:
    """A retry of the case (of step `number`, or any) is still waiting for the processor's answer."""
    attempts = DunningAttempt.objects.filter(case=case, status=AttemptStatus.REQUESTED,
                                             requested_at__gt=now - RETRY_RESULT_WAIT)
    if number is not None:
        attempts = attempts.filter(step__number=number)
    return attempts.exists()


def run_retry_step(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    if case.hard and step.number < CARD_UPDATE_STEP_BASE:
        finish_step(step, now=now, status=StepStatus.SKIPPED, note="hard decline: no automatic retries")
        return "skipped"
    number = DunningAttempt.objects.filter(case=case).count() + 1
    shadowed = not stage_allows_member_effects(case)
    attempt = DunningAttempt.objects.create(
        case=case, step=step, number=number, idempotency_key=f"medspa-dunning-{case.pk}-retry-{number}",
        status=AttemptStatus.SHADOWED if shadowed else AttemptStatus.REQUESTED, requested_at=now,
        finished_at=now if shadowed else None,
    )
    why = "card updated" if step.number >= CARD_UPDATE_STEP_BASE else f"step {step.number}"
    record_case_event(case, kind=EventKind.DUNNING_RETRY, now=now,
                      summary=(f"Payment retry {number} not made{'' if why.startswith('step') else f' ({why})'}: "
                               "automatic retries are off for this practice; send the card link, or retry the charge "
                               "in the processor's dashboard"
                               if shadowed else f"Payment retry {number} requested ({why})"),
                      payload={"attempt_id": attempt.pk, "attempt_number": number,
                               "idempotency_key": attempt.idempotency_key, "amount_cents": case.amount_cents,
                               "currency": case.currency, "shadowed": shadowed})
    finish_step(step, now=now, note=f"retry {number}" + (" (shadowed)" if shadowed else ""))
    return "retry_shadowed" if shadowed else "retry"


# --- the processor's answers -----------------------------------------------------------------------

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
    case = lock_case(attempt.case_id)
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
    record_case_event(case, kind=EventKind.DUNNING_ATTEMPT, now=now, summary=summary,
                      payload={"attempt_id": attempt.pk, "attempt_number": attempt.number, "paid": paid,
                               "decline_code": attempt.decline_code, "unreachable": unreachable})
    if paid:
        close_case_for_payment(invoice_ref=case.invoice_ref, practice_id=case.practice_id, now=now, source="retry")
    elif case.status == DunningCaseStatus.OPEN and is_hard_decline(decline_code) and not case.hard:
        stop_retries(case, decline_code=decline_code, now=now)
    return attempt


NO_PAYMENT_EXPECTED = "no_payment_expected"


@transaction.atomic
def withdraw_retry(*, attempt_id: int, now: datetime) -> bool:
    """A retry still on its way whose invoice the processor voided or wrote off since it was asked
    for is not made: the attempt ends without a charge and the timeline says why (not "declined").
    The membership is locked first, as the webhook that ended the case locks it. Returns whether it
    was withdrawn (False: answered already, or its case is not forgiven)."""
    membership_id = DunningAttempt.objects.filter(pk=attempt_id).values_list("case__membership_id", flat=True).first()
    list(Membership.objects.select_for_update(of=("self",)).filter(pk=membership_id).values_list("pk", flat=True))
    attempt = DunningAttempt.objects.select_for_update().get(pk=attempt_id)
    case = lock_case(attempt.case_id)
    if attempt.status != AttemptStatus.REQUESTED or case.status not in (DunningCaseStatus.FORGIVEN,
                                                                         DunningCaseStatus.WRITTEN_OFF):
        return False
    attempt.status, attempt.decline_code, attempt.finished_at = AttemptStatus.FAILED, NO_PAYMENT_EXPECTED, now
    attempt.save(update_fields=["status", "decline_code", "finished_at"])
    record_case_event(case, kind=EventKind.DUNNING_ATTEMPT, now=now,
                      summary=f"Payment retry {attempt.number} not made: no payment expected any more",
                      payload={"attempt_id": attempt.pk, "attempt_number": attempt.number, "paid": False,
                               "decline_code": NO_PAYMENT_EXPECTED, "withdrawn": True})
    return True


@transaction.atomic
def rearm_unreachable_retry(*, attempt_id: int, now: datetime) -> DunningAttempt | None:
    """A manager redelivers a dead-lettered retry: the attempt recorded as unreachable is requested
    again (same idempotency key: never charged twice). None when the case is closed or hard (no
    automatic retries then) or the attempt did reach the processor."""
    attempt = DunningAttempt.objects.select_for_update().get(pk=attempt_id)
    case = lock_case(attempt.case_id)
    if (attempt.status != AttemptStatus.FAILED or attempt.decline_code != PROCESSOR_UNREACHABLE
            or case.status != DunningCaseStatus.OPEN or case.hard):
        return None
    attempt.status, attempt.decline_code, attempt.finished_at = AttemptStatus.REQUESTED, "", None
    attempt.save(update_fields=["status", "decline_code", "finished_at"])
    record_case_event(case, kind=EventKind.DUNNING, now=now, summary=f"Payment retry {attempt.number} redelivered",
                      payload={"attempt_id": attempt.pk, "attempt_number": attempt.number})
    return attempt


# --- a new card ---------------------------------------------------------------------------------------

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
    case = lock_case(case.pk)
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
        record_case_event(case, kind=EventKind.DUNNING, now=now,
                          summary=f"Card updated again: no retry (this case has had its {limit} card-update retries)",
                          payload={"source": source[:40], "card_update_retries": used})
        return None
    step = DunningStep.objects.create(case=case, key=key, number=CARD_UPDATE_STEP_BASE + used + 1,
                                      kind=StepKind.RETRY, due_at=now, note=f"{source} {payment_method_ref}"[:200])
    record_case_event(case, kind=EventKind.DUNNING, now=now, summary="Card updated: payment retry scheduled now",
                      payload={"step_id": step.pk, "source": source[:40]})
    refresh_next_action(case)
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
