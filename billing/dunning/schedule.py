"""The scheduled run of dunning: every pending step that is due (a retry, a message, the exhaustion)
is worked off, oldest first. Calls to the processor and messages to the member leave through the
outbox (events DUNNING_RETRY and DUNNING_MESSAGE), so they happen after commit, once, and only in
the `dunning` automation stage or above (below it they are recorded as shadowed)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from billing.models import DunningCase, DunningCaseStatus, DunningStep, ExhaustedAction, StepKind, StepStatus
from memberships import services as ledger
from memberships.failures import error_text, log_failure
from memberships.models import Membership, MembershipStatus

from . import sweep
from .cases import SYSTEM, finish_case, finish_step, lock_case, other_open_cases, refresh_next_action
from .messages import run_message_step
from .retries import run_retry_step, waiting_for_retry

logger = logging.getLogger(__name__)


def run_dunning(*, now: datetime, limit: int = 500) -> dict[str, int]:
    """The dunning run: first, set-based (`sweep`), the cases of failed invoices that have none are
    opened and the due messages that wait for no retry (a new case's day 0) are queued; then every
    other pending step that is due is worked off, oldest first, one at a time. The due work is in
    `DunningStep`, so a lost or repeated task is harmless: the next run finds the same rows. Safe in
    several workers at once (row locks, SKIP LOCKED) and when run twice. A step that raises (bad
    data such as a time zone that does not exist, or a bug) is undone, logged by ids and noted on
    the step, which stays pending and is due again at the next run; the other cases go on."""
    counts: dict[str, int] = {}
    opened = sweep.open_new_cases(now=now, limit=limit)
    if opened:
        counts["opened"] = opened
    for outcome, n in sweep.run_due_messages(now=now, limit=limit).items():
        counts[outcome] = counts.get(outcome, 0) + n
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
    # The membership first, then the step and its case, as every path that changes a case does (the
    # inbox holds the membership while a payment or a void ends the case): a membership another worker
    # holds is left to it, and its step stays due for the next run (never a deadlock with the webhook).
    membership_id = DunningStep.objects.filter(pk=step_id).values_list("case__membership_id", flat=True).first()
    if membership_id is None or not list(Membership.objects.select_for_update(of=("self",), skip_locked=True)
                                         .filter(pk=membership_id).values_list("pk", flat=True)):
        return None
    step = (DunningStep.objects.select_for_update(skip_locked=True)
            .filter(pk=step_id, status=StepStatus.PENDING, due_at__lte=now).first())
    if step is None:
        return None
    case = lock_case(step.case_id)
    if case.status != DunningCaseStatus.OPEN:
        finish_step(step, now=now, status=StepStatus.SKIPPED, note=f"case {case.status}")
        return "skipped"
    if case.membership.status == MembershipStatus.CANCELLED:
        # Cancelled meanwhile (by staff or the processor): nothing left to chase.
        finish_case(case, status=DunningCaseStatus.CANCELLED, reason="membership cancelled", now=now)
        ledger.clear_chart_flag(source_ref=case.flag_ref, actor=SYSTEM, now=now, reason="membership cancelled")
        return "cancelled"
    if step.kind == StepKind.RETRY:
        outcome = run_retry_step(case, step, now=now)
    elif step.kind in (StepKind.SMS, StepKind.EMAIL):
        outcome = run_message_step(case, step, now=now)
    else:
        outcome = _run_exhaust_step(case, step, now=now)
    refresh_next_action(case)
    return outcome


def _run_exhaust_step(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    """The end of the schedule: the case is exhausted and, unless the membership has another open
    case, the policy's action on exhaustion is taken (lapse, or cancel)."""
    if waiting_for_retry(case, number=None, now=now):
        return "waiting"
    policy = case.policy
    finish_step(step, now=now)
    finish_case(case, status=DunningCaseStatus.EXHAUSTED, now=now,
                reason=f"payment not recovered; {policy.get_exhausted_action_display().lower()}")
    membership = Membership.objects.get(pk=case.membership_id)
    if other_open_cases(case):
        return "exhausted"
    if membership.status == MembershipStatus.PAST_DUE:
        membership = ledger.mark_lapsed(membership=membership, actor=SYSTEM, now=now,
                                        idempotency_key=f"dunning:lapsed:{case.pk}",
                                        reason="dunning exhausted: entitlements paused until paid")
    if policy.exhausted_action == ExhaustedAction.CANCEL and membership.status != MembershipStatus.CANCELLED:
        ledger.cancel_membership(membership=membership, actor=SYSTEM, now=now,
                                 idempotency_key=f"dunning:cancel:{case.pk}", reason="Payment not recovered")
    return "exhausted"
