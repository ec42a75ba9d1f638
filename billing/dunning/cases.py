"""Dunning cases and their state: a failed invoice opens one case (a repeated or late failure folds
into it), a payment closes it (recovered), staff or the processor cancel it. Every change is an
Event on the member's timeline, in the same transaction. Also the helpers the other dunning modules
share: the case's lock, its events, its steps' bookkeeping.

Hand-off points for the processor side (no vendor knowledge here):
- `open_case_for_failure(...)`  on every failed charge of an invoice (duplicates welcome);
- `close_case_for_payment(...)` on every paid invoice (ours or the processor's retries, or the
  member paying after a card update);
- `cancel_case_for_invoice(...)` when the invoice is voided / written off;
- `cancel_cases_of_membership(...)` when the processor ended the subscription.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Min

from billing.models import DunningCase, DunningCaseStatus, DunningPolicy, DunningStep, StepKind, StepStatus
from memberships import services as ledger
from memberships.models import AutomationStage, EventKind, Membership, MembershipStatus
from memberships.services import Actor

from .declines import is_hard_decline
from .policy import current_policy, plan_steps

logger = logging.getLogger(__name__)

SYSTEM = Actor.system("dunning")
# Step numbers: the policy's offsets count from 0; a retry after a card update is numbered from
# CARD_UPDATE_STEP_BASE, a step staff asked for from MANUAL_STEP_BASE.
CARD_UPDATE_STEP_BASE = 100
MANUAL_STEP_BASE = 200
OPENABLE = (MembershipStatus.ACTIVE, MembershipStatus.PENDING, MembershipStatus.PAST_DUE, MembershipStatus.LAPSED)


# --- what every dunning module shares -------------------------------------------------------------

def record_case_event(case: DunningCase, *, kind: str, summary: str, payload: dict, now: datetime,
                      actor: Actor = SYSTEM) -> None:
    ledger.record_event(membership=case.membership, member=case.member, kind=kind, summary=summary,
                        payload={"case_id": case.pk, "invoice_ref": case.invoice_ref, **payload},
                        actor=actor, now=now)


def stage_allows_member_effects(case: DunningCase) -> bool:
    return case.practice.stage_at_least(AutomationStage.DUNNING)


def refresh_next_action(case: DunningCase) -> None:
    next_at = case.steps.filter(status=StepStatus.PENDING).aggregate(m=Min("due_at"))["m"]
    DunningCase.objects.filter(pk=case.pk).update(next_action_at=next_at)
    case.next_action_at = next_at


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


def finish_case(case: DunningCase, *, status: str, reason: str, now: datetime, actor: Actor = SYSTEM) -> None:
    case.status = status
    case.closed_at = now
    case.close_reason = reason[:200]
    case.next_action_at = None
    case.save(update_fields=["status", "closed_at", "close_reason", "next_action_at"])
    DunningStep.objects.filter(case=case, status=StepStatus.PENDING).update(
        status=StepStatus.SKIPPED, done_at=now, note=f"case {status}")
    record_case_event(case, kind=EventKind.DUNNING_CLOSED, now=now, actor=actor,
                      summary=f"Dunning {status}: {reason}"[:300],
                      payload={"status": status, "policy_version": case.policy.version})


# --- opening ----------------------------------------------------------------------------------------

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
    failure = {"decline_code": decline_code, "hard": hard, "failed_at": failed_at or now, "now": now}
    practice_id = membership.member.practice_id
    with transaction.atomic():
        existing = DunningCase.objects.filter(practice_id=practice_id, invoice_ref=invoice_ref).values_list(
            "pk", flat=True).first()
        if existing is not None:
            return _fold_failure(existing, **failure)
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
                    decline_code=decline_code, hard=hard, last_failure_at=failure["failed_at"], opened_at=now,
                )
        except IntegrityError:  # a concurrent twin opened it first
            existing = DunningCase.objects.get(practice_id=practice_id, invoice_ref=invoice_ref)
            return _fold_failure(existing.pk, **failure)
        case = lock_case(case.pk)
        _start_case(case, policy, membership=locked, mark_past_due=mark_past_due, now=now)
        return case


def _fold_failure(case_id: int, *, decline_code: str, hard: bool, failed_at: datetime, now: datetime) -> DunningCase:
    """Another failure of the invoice: counted; the newest failure's code kept; a hard decline stops
    the retries of an open case."""
    case = lock_case(case_id)
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
        stop_retries(case, decline_code=decline_code, now=now)
    return case


def _start_case(case: DunningCase, policy: DunningPolicy, *, membership: Membership, mark_past_due: bool,
                now: datetime) -> None:
    """A new case: its steps planned, the opening on the timeline, the membership past due (unless a
    newer cycle was paid already) and the chart flagged."""
    plan_steps(case, policy)
    amount_cents, decline_code, hard = case.amount_cents, case.decline_code, case.hard
    summary = (f"Dunning opened: {case.currency.upper()} {amount_cents / 100:,.2f} declined"
               f" ({decline_code or 'no code'}, {'hard' if hard else 'soft'}); policy v{policy.version}")
    record_case_event(case, kind=EventKind.DUNNING_OPENED, now=now, summary=summary,
                      payload={"policy_id": policy.pk, "policy_version": policy.version, "amount_cents": amount_cents,
                               "currency": case.currency, "decline_code": decline_code, "hard": hard})
    if not membership.member.email and not membership.member.can_receive_sms:
        record_case_event(case, kind=EventKind.DUNNING, now=now,
                          summary="No message can reach this member (no SMS consent, no email): call them",
                          payload={"unreachable": True})
    if mark_past_due and membership.status in (MembershipStatus.ACTIVE, MembershipStatus.PENDING):
        ledger.mark_past_due(membership=membership, actor=SYSTEM, idempotency_key=f"dunning:past-due:{case.pk}",
                             now=now, invoice_ref=case.invoice_ref)
    ledger.set_chart_flag(member=case.member, membership=membership, source="dunning", source_ref=case.flag_ref,
                          text=policy.flag_text, reason="card_declined", actor=SYSTEM, now=now)
    refresh_next_action(case)


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
    if case.status == DunningCaseStatus.OPEN:
        finish_case(case, status=DunningCaseStatus.RECOVERED, reason=f"invoice paid ({source})", now=now)
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
