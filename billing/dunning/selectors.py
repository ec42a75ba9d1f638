"""Reads for the dunning pages (the staff queue) and the edges. They never write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Prefetch, Q, Sum

from billing.models import (
    AttemptStatus,
    DunningCase,
    DunningCaseStatus,
    DunningMessage,
    DunningStep,
    MessageStatus,
    StepKind,
    StepStatus,
)

from memberships.display import format_money

from .cases import CARD_UPDATE_STEP_BASE, MANUAL_STEP_BASE


@dataclass(frozen=True)
class NextAction:
    kind: str          # retry | sms | email | exhaust
    due_at: datetime
    label: str         # "Retry (step 2)", "SMS (step 1, deferred: quiet hours)", "Exhaust: pause entitlements"


@dataclass(frozen=True)
class OpenCase:
    case_id: int
    member_id: int
    member_name: str
    member_number: str
    membership_id: int
    invoice_ref: str
    amount_cents: int            # the amount at risk
    currency: str
    decline_code: str
    hard: bool
    opened_at: datetime
    policy_version: int
    retries_made: int
    messages_sent: int
    last_contacted_at: datetime | None
    next_action: NextAction | None
    unreachable: bool = False    # no SMS consent (or opted out) and no email: only a call reaches them
    member_phone: str = ""       # E.164, for the call

    @property
    def amount_display(self) -> str:
        return format_money(self.amount_cents, self.currency)


def _label(step: DunningStep, exhausted_action_display: str) -> str:
    if step.kind == StepKind.EXHAUST:
        return f"Exhaust: {exhausted_action_display.lower()}"
    if step.number >= MANUAL_STEP_BASE:
        where = "resent by staff"
    elif step.number >= CARD_UPDATE_STEP_BASE:
        where = "card updated"
    else:
        where = f"step {step.number}"
    name = {"retry": "Retry", "sms": "SMS", "email": "Email"}[step.kind]
    deferred = ", deferred: quiet hours" if step.deferred_from else ""
    return f"{name} ({where}{deferred})"


def open_dunning_cases(practice_id: int) -> list[OpenCase]:
    """Open cases of the practice, oldest first, each with its next action and amount at risk."""
    pending = DunningStep.objects.filter(status=StepStatus.PENDING).order_by("due_at", "number", "id")
    cases = (
        DunningCase.objects.filter(practice_id=practice_id, status=DunningCaseStatus.OPEN)
        .select_related("member", "policy")
        .annotate(
            retries_made=Count("attempts", filter=Q(attempts__status__in=[AttemptStatus.PAID, AttemptStatus.FAILED,
                                                                          AttemptStatus.REQUESTED]), distinct=True),
            messages_sent=Count("messages", filter=Q(messages__sent_at__isnull=False), distinct=True),
        )
        .prefetch_related(Prefetch("steps", queryset=pending, to_attr="pending_steps"))
        .order_by("opened_at", "id")
    )
    rows = []
    for case in cases:
        step = case.pending_steps[0] if case.pending_steps else None
        rows.append(OpenCase(
            case_id=case.pk, member_id=case.member_id, member_name=case.member.full_name,
            member_number=case.member.member_number, membership_id=case.membership_id,
            invoice_ref=case.invoice_ref, amount_cents=case.amount_cents, currency=case.currency,
            decline_code=case.decline_code, hard=case.hard, opened_at=case.opened_at,
            policy_version=case.policy.version, retries_made=case.retries_made,
            messages_sent=case.messages_sent, last_contacted_at=case.last_contacted_at,
            unreachable=not case.member.email and not case.member.can_receive_sms, member_phone=case.member.phone,
            next_action=NextAction(kind=step.kind, due_at=step.due_at,
                                   label=_label(step, case.policy.get_exhausted_action_display()))
            if step else None,
        ))
    return rows


def chart_failed_at(member_path: str):
    """Chart figure: when the member's open case's charge last failed (None without an open case),
    read in the chart's own query (`memberships.selectors.register_chart_count`)."""
    from django.db.models import OuterRef, Subquery

    cases = DunningCase.objects.filter(member_id=OuterRef(f"{member_path}id"), status=DunningCaseStatus.OPEN)
    return Subquery(cases.order_by("-last_failure_at").values("last_failure_at")[:1])


def chart_next_retry_at(member_path: str):
    """Chart figure: when the member's open case is next retried, if a retry is planned (a hard
    decline is never retried on schedule; a card update retries at once)."""
    from django.db.models import OuterRef, Subquery

    steps = DunningStep.objects.filter(
        case__member_id=OuterRef(f"{member_path}id"), case__status=DunningCaseStatus.OPEN,
        kind=StepKind.RETRY, status=StepStatus.PENDING,
    ).exclude(case__hard=True, number__lt=CARD_UPDATE_STEP_BASE)
    return Subquery(steps.order_by("due_at").values("due_at")[:1])


def amount_at_risk(practice_id: int) -> dict[str, int]:
    """Currency → cents owed on open cases."""
    rows = (DunningCase.objects.filter(practice_id=practice_id, status=DunningCaseStatus.OPEN)
            .values("currency").annotate(total=Sum("amount_cents")))
    return {row["currency"]: row["total"] for row in rows}


def case_timeline(case: DunningCase):
    """The member's events that belong to this case, newest first (the admin's read-only timeline)."""
    from memberships.models import Event

    return Event.objects.filter(member_id=case.member_id, payload__case_id=case.pk).order_by("-created_at", "-id")


def message_for_sending(message_id: int) -> DunningMessage | None:
    return (DunningMessage.objects.select_related("case__member__practice", "case__practice")
            .filter(pk=message_id).first())


def case_for_card_link(case_id: int) -> DunningCase | None:
    return DunningCase.objects.select_related("member", "practice").filter(pk=case_id).first()


def pending_message_statuses() -> tuple[str, ...]:
    return (MessageStatus.PENDING,)


def open_case_for_membership(membership_id: int) -> DunningCase | None:
    """The oldest open case of a membership (the queue page's row actions take a membership id)."""
    return (DunningCase.objects.filter(membership_id=membership_id, status=DunningCaseStatus.OPEN)
            .select_related("member", "practice").order_by("opened_at", "id").first())
