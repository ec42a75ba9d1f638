"""The set-based part of the dunning run, before the steps that need one case at a time:

1. `open_new_cases`: every failed invoice that has no case yet (a failure whose webhook could not
   open it, or failures recorded in bulk) gets its case, in batches (`opening.open_cases`: one
   statement per table). A failure the processor reported has already decided the membership's
   status, so the sweep does not mark it past due.
2. `run_due_messages`: the due message steps that wait for no retry — a new case's day-0 SMS and
   email above all — planned by `messages.plan_message_step` (consent, quiet hours, email address)
   and written by `messages.carry_out` (the messages, their events and outbox rows, the steps), in
   one transaction per batch of cases.

Both are safe in several workers at once: memberships and cases are taken with SKIP LOCKED (what
another worker holds is left to it, or to the next run), and a case is never opened twice (see
`opening`). A batch that fails is logged and left as it was: the one-at-a-time run behind it takes
the same steps (and notes a step's own error on it), and the failures are opened one by one."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef

from billing.models import (
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningStep,
    Invoice,
    InvoiceStatus,
    StepKind,
    StepStatus,
)
from memberships.failures import log_failure
from memberships.models import Membership, MembershipStatus

from .cases import refresh_next_actions
from .messages import carry_out, plan_message_step
from .opening import OPENABLE, Failure, failure_of_invoice, open_cases
from .retries import RETRY_RESULT_WAIT

logger = logging.getLogger(__name__)

BATCH = 250
MESSAGE_KINDS = (StepKind.SMS, StepKind.EMAIL)


def _batches(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- new cases --------------------------------------------------------------------------------------

def failures_without_case(*, now: datetime, limit: int) -> list[Failure]:
    """The failed, unpaid invoices of memberships dunning applies to that have no case, oldest first."""
    has_case = DunningCase.objects.filter(practice_id=OuterRef("practice_id"),
                                          invoice_ref=OuterRef("processor_invoice_id"))
    invoices = (Invoice.objects.filter(status=InvoiceStatus.OPEN, failed_at__isnull=False,
                                       membership__status__in=OPENABLE)
                .exclude(Exists(has_case)).order_by("failed_at", "id")[:limit])
    return [failure_of_invoice(invoice, mark_past_due=False, now=now) for invoice in invoices]


def open_new_cases(*, now: datetime, limit: int = 1000) -> int:
    """Open the cases of failed invoices that have none; returns how many were opened."""
    opened = 0
    for batch in _batches(failures_without_case(now=now, limit=limit)):
        try:
            opened += len(open_cases(batch, now=now, skip_locked=True))
        except Exception as exc:
            log_failure(logger, "dunning: opening %s cases together failed; opening them one by one", len(batch),
                        exc=exc)
            opened += _open_one_by_one(batch, now=now)
    return opened


def _open_one_by_one(failures: list[Failure], *, now: datetime) -> int:
    opened = 0
    for item in failures:
        try:
            opened += len(open_cases([item], now=now, skip_locked=True))
        except Exception as exc:
            log_failure(logger, "dunning: could not open the case of membership %s; tried again next run",
                        item.membership_id, exc=exc)
    return opened


# --- due messages -------------------------------------------------------------------------------------

def _due_message_steps():
    retry_pending = DunningStep.objects.filter(case_id=OuterRef("case_id"), number=OuterRef("number"),
                                               kind=StepKind.RETRY, status=StepStatus.PENDING)
    return (DunningStep.objects.filter(status=StepStatus.PENDING, kind__in=MESSAGE_KINDS,
                                       case__status=DunningCaseStatus.OPEN)
            .exclude(case__membership__status=MembershipStatus.CANCELLED)
            .exclude(Exists(retry_pending)))


def run_due_messages(*, now: datetime, limit: int = 1000) -> dict[str, int]:
    """Plan and queue the due message steps that wait for no retry, of at most `limit` cases (the
    oldest due first); returns the outcomes' counts."""
    due = (_due_message_steps().filter(due_at__lte=now).order_by("due_at", "number", "id")
           .values_list("case_id", flat=True)[:limit * len(MESSAGE_KINDS)])
    case_ids = list(dict.fromkeys(due))[:limit]
    counts: Counter[str] = Counter()
    for batch in _batches(case_ids):
        try:
            with transaction.atomic():
                counts.update(_run_messages_of(batch, now=now))
        except Exception as exc:
            log_failure(logger, "dunning: the messages of %s cases could not be queued together; the run takes "
                        "them one by one", len(batch), exc=exc)
    return dict(counts)


def _run_messages_of(case_ids: list[int], *, now: datetime) -> list[str]:
    # Memberships first, then cases, as every path that changes a case does (the inbox holds the
    # membership when a failure folds into its case): what another worker holds is left to it.
    memberships = (Membership.objects.select_for_update(skip_locked=True).order_by("pk")
                   .filter(pk__in=DunningCase.objects.filter(pk__in=case_ids).values("membership_id")))
    cases = {case.pk: case for case in (
        DunningCase.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("practice", "member__practice", "member__home_location", "membership", "policy")
        .filter(pk__in=case_ids, status=DunningCaseStatus.OPEN,
                membership_id__in=list(memberships.values_list("pk", flat=True))).order_by("pk"))}
    if not cases:
        return []
    steps = list(_due_message_steps().select_for_update(of=("self",), skip_locked=True)
                 .filter(case_id__in=list(cases), due_at__lte=now).order_by("due_at", "number", "id"))
    email_steps = set(DunningStep.objects.filter(case_id__in=list(cases), kind=StepKind.EMAIL)
                      .values_list("case_id", "number"))
    waiting = set(DunningAttempt.objects.filter(case_id__in=list(cases), status=AttemptStatus.REQUESTED,
                                                requested_at__gt=now - RETRY_RESULT_WAIT)
                  .values_list("case_id", "step__number"))
    plans = []
    for step in steps:
        if step.case_id not in cases or (step.case_id, step.number) in waiting:
            continue                                   # the one-at-a-time run has it wait for its retry
        step.case = case = cases[step.case_id]
        try:
            plans.append(plan_message_step(case, step, has_email_step=(step.case_id, step.number) in email_steps,
                                           now=now))
        except Exception as exc:                       # bad data (a time zone that does not exist): the
            log_failure(logger, "dunning step %s could not be planned", step.pk, exc=exc)  # run notes it
    outcomes = carry_out(plans, now=now)
    refresh_next_actions(sorted({plan.case.pk for plan in plans}))
    return outcomes
