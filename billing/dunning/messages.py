"""Messages to the member of a dunning case: a message step picks the channel (SMS with consent and
outside quiet hours, else email), the message is rendered and handed to the outbox (event
DUNNING_MESSAGE, delivered by the messaging destination after commit), and what the provider reports
comes back here (sent, not deliverable, delivery status). An SMS the member opted out of falls back
to email. Staff may send the card-update link again from the queue page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from billing.models import (
    MESSAGE_STATUS_RANK,
    DunningCase,
    DunningCaseStatus,
    DunningMessage,
    DunningStep,
    Invoice,
    InvoiceStatus,
    MessageChannel,
    MessageStatus,
    StepKind,
    StepStatus,
)
from memberships import services as ledger
from memberships.models import EventKind
from memberships.services import Actor
from memberships.services import sql
from memberships.services.common import record_events

from .cases import (
    CARD_UPDATE_STEP_BASE,
    MANUAL_STEP_BASE,
    case_event,
    lock_case,
    record_case_event,
    refresh_next_action,
    save_steps,
    stage_allows_member_effects,
)
from .errors import CaseClosed
from .quiet import quiet_until
from .rendering import render_email, render_sms
from .retries import waiting_for_retry


def _has_sibling(case: DunningCase, step: DunningStep, kind: str) -> bool:
    return DunningStep.objects.filter(case=case, number=step.number, kind=kind).exists()


@dataclass
class MessagePlan:
    """What a due message step does now: skipped (`skip_note`), deferred to the end of quiet hours
    (`until`), or a message queued on `channel`."""

    case: DunningCase
    step: DunningStep
    skip_note: str = ""
    until: datetime | None = None
    channel: str = ""
    reason: str = ""


def plan_message_step(case: DunningCase, step: DunningStep, *, has_email_step: bool, now: datetime) -> MessagePlan:
    """The rules of a message step, for one step or a sweep's many (the caller has checked that no
    retry of the step is awaited): SMS only with consent (else the step's own email goes, or an
    email instead of the SMS), never in the member's quiet hours (deferred to their end), email only
    to an address. `has_email_step`: the case has an email step of the same number."""
    member = case.member
    channel = MessageChannel.SMS if step.kind == StepKind.SMS else MessageChannel.EMAIL
    reason = "manual" if step.number >= MANUAL_STEP_BASE else "schedule"
    if channel == MessageChannel.SMS and not member.can_receive_sms:
        if has_email_step:
            return MessagePlan(case, step, skip_note="no SMS consent; the step's email goes instead")
        if not member.email:
            return MessagePlan(case, step, skip_note="no SMS consent and no email address")
        channel, reason = MessageChannel.EMAIL, "fallback"
    if channel == MessageChannel.SMS:
        until = quiet_until(member=member, now=now)
        if until is not None:
            return MessagePlan(case, step, until=until)
    if channel == MessageChannel.EMAIL and not member.email:
        return MessagePlan(case, step, skip_note="no email address")
    return MessagePlan(case, step, channel=channel, reason=reason)


def carry_out(plans: list[MessagePlan], *, now: datetime) -> list[str]:
    """Write what the plans decided — the messages and their events (one statement each), the steps
    finished, skipped or deferred (one statement) — and return each plan's outcome."""
    queued = [plan for plan in plans if plan.channel]
    messages = iter(queue_messages([(plan.case, plan.channel, plan.reason, plan.step) for plan in queued], now=now))
    outcomes = []
    for plan in plans:
        step = plan.step
        if plan.channel:
            message = next(messages)
            step.status, step.done_at = StepStatus.DONE, now
            step.note = (f"{plan.channel} message {message.pk}" + (" (fallback)" if plan.reason == "fallback" else ""))
            shadowed = message.status == MessageStatus.SHADOWED
            outcomes.append(f"{plan.channel}_shadowed" if shadowed else str(plan.channel))
        elif plan.until is not None:
            step.deferred_from = step.deferred_from or step.due_at
            step.due_at = plan.until
            outcomes.append("deferred")
        else:
            step.status, step.done_at, step.note = StepStatus.SKIPPED, now, plan.skip_note
            outcomes.append("skipped")
        step.note = step.note[:200]
    save_steps([plan.step for plan in plans])
    return outcomes


def run_message_step(case: DunningCase, step: DunningStep, *, now: datetime) -> str:
    if waiting_for_retry(case, number=step.number, now=now):
        return "waiting"
    has_email_step = (step.kind == StepKind.SMS and not case.member.can_receive_sms
                      and _has_sibling(case, step, StepKind.EMAIL))
    return carry_out([plan_message_step(case, step, has_email_step=has_email_step, now=now)], now=now)[0]


def queue_message(case: DunningCase, *, channel: str, reason: str, now: datetime,
                  step: DunningStep | None = None) -> DunningMessage:
    """Render the message and hand it to the outbox (an Event); the messaging destination sends it."""
    return queue_messages([(case, channel, reason, step)], now=now)[0]


def queue_messages(items: list[tuple[DunningCase, str, str, DunningStep | None]], *, now: datetime) -> list[DunningMessage]:
    """Render each (case, channel, reason, step) message and hand it to the outbox: the messages in
    one statement, their DUNNING_MESSAGE events (and through them the outbox rows) in another.
    Below the practice's dunning stage a message is recorded as shadowed and nothing leaves."""
    messages = []
    for case, channel, reason, step in items:
        subject, body = ("", render_sms(case.policy, case)) if channel == MessageChannel.SMS else \
            render_email(case.policy, case)
        messages.append(DunningMessage(
            case=case, step=step, channel=channel, reason=reason, subject=subject, body=body, created_at=now,
            status=MessageStatus.PENDING if stage_allows_member_effects(case) else MessageStatus.SHADOWED))
    if not messages:
        return messages
    sql.insert_many(messages)
    record_events([_message_event(message, now=now) for message in messages])
    return messages


def _message_event(message: DunningMessage, *, now: datetime):
    step, channel, reason = message.step, message.channel, message.reason
    shadowed = message.status == MessageStatus.SHADOWED
    label = "SMS" if channel == MessageChannel.SMS else "Email"
    where = f"step {step.number}" if step is not None and step.number < CARD_UPDATE_STEP_BASE else reason
    return case_event(message.case, kind=EventKind.DUNNING_MESSAGE, now=now,
                      summary=(f"Card-update {label if label == 'SMS' else 'email'} not sent: automatic reminders "
                               "are off for this practice; send the card link or call the member" if shadowed
                               else f"Card-update {label} queued ({where})"),
                      payload={"message_id": message.pk, "channel": channel, "reason": reason, "shadowed": shadowed,
                               "step": step.number if step is not None else None})


# --- what the provider reports ---------------------------------------------------------------------

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


def _record_opt_out(message: DunningMessage, *, error_code: str, now: datetime) -> None:
    """The member's number opted out: no more SMS to them (on the timeline, with the provider's code),
    and this message's step goes by email instead."""
    ledger.record_sms_opt_out(member=message.case.member, actor=Actor.system("sms"), now=now,
                              source=f"provider code {error_code}" if error_code else "opt-out")
    message.case.member.refresh_from_db()
    _fallback_email(message, now=now)


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
    record_case_event(message.case, kind=EventKind.MESSAGE_SENT, now=now, summary=f"Card-update {label} sent",
                      payload={"message_id": message.pk, "channel": message.channel, "reason": message.reason})
    return message


WITHDRAWN_WHEN = (DunningCaseStatus.RECOVERED, DunningCaseStatus.CANCELLED, DunningCaseStatus.FORGIVEN,
                  DunningCaseStatus.WRITTEN_OFF)


def invoice_forgiven_since(case: DunningCase) -> bool:
    """The case's invoice was voided, cancelled or written off at the processor: no payment expected.
    A case exhausted before that keeps its outcome (`cases.forgive_case_for_invoice`), so its status
    alone does not say it."""
    return Invoice.objects.filter(practice_id=case.practice_id, processor_invoice_id=case.invoice_ref,
                                  status__in=(InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)).exists()


def nothing_to_chase(case: DunningCase) -> bool:
    """No card-update message of the case may go any more: it was paid, cancelled or forgiven, or it was
    exhausted and its invoice forgiven since (its last reminders go only while the invoice is owed)."""
    return case.status in WITHDRAWN_WHEN or (case.status == DunningCaseStatus.EXHAUSTED
                                             and invoice_forgiven_since(case))


@transaction.atomic
def withdraw_message(*, message_id: int, now: datetime) -> bool:
    """A message still waiting to leave whose case was paid (or cancelled, or its invoice forgiven or
    written off at the processor: nothing to chase) since it was queued is not sent: skipped, and the
    timeline says so. An exhausted case's last reminders still go, unless its invoice was forgiven
    since. Returns whether it was withdrawn."""
    message = _lock_message(message_id)
    case = message.case
    if message.status != MessageStatus.PENDING or not nothing_to_chase(case):
        return False
    message.status, message.status_updated_at = MessageStatus.SKIPPED, now
    message.save(update_fields=["status", "status_updated_at"])
    label = "SMS" if message.channel == MessageChannel.SMS else "email"
    why = ("no payment expected any more" if case.status == DunningCaseStatus.EXHAUSTED
           else f"the payment follow-up ended ({case.get_status_display().lower()})")
    record_case_event(case, kind=EventKind.DUNNING, now=now, summary=f"Card-update {label} not sent: {why}",
                      payload={"message_id": message.pk, "withdrawn": True})
    return True


def record_message_held_back(*, message_id: int, now: datetime) -> bool:
    """A message queued while the member's location ran dunning, held back at send time because the
    location (or practice) has since moved below it: shadowed, as if queued below the stage, never
    left pending. Returns whether it was still pending."""
    return DunningMessage.objects.filter(pk=message_id, status=MessageStatus.PENDING).update(
        status=MessageStatus.SHADOWED, status_updated_at=now) == 1


@transaction.atomic
def record_message_undeliverable(*, message_id: int, now: datetime, error_code: str = "",
                                 opted_out: bool = False, note: str = "") -> DunningMessage:
    """The message could not go: the recipient opted out (no consent at send time, or the provider
    says the number opted out: recorded at once, and the step falls back to email), or the provider
    refused it for good. `error_code` is the provider's, kept as it is."""
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
    why = f" ({note or error_code})" if (note or error_code) else ""
    record_case_event(case, kind=EventKind.DUNNING, now=now, summary=f"{message.get_channel_display()} not delivered{why}",
                      payload={"message_id": message.pk, "error_code": error_code[:20], "opted_out": opted_out})
    if opted_out and message.channel == MessageChannel.SMS:
        _record_opt_out(message, error_code=error_code, now=now)
    return message


@transaction.atomic
def record_message_status(*, provider_id: str, status: str, now: datetime, error_code: str = "",
                          opted_out: bool = False) -> DunningMessage | None:
    """A delivery status callback: recorded, moving the status only forward (callbacks come
    unordered and repeated). `opted_out`: the provider says the recipient opted out, which is
    recorded and the step falls back to email. Unknown message ids are ignored (None)."""
    message_id = DunningMessage.objects.filter(provider_id=provider_id).values_list("pk", flat=True).first()
    if message_id is None or not provider_id:
        return None
    message = _lock_message(message_id)
    changed = _move_status(message, status, now=now) if status in MessageStatus.values else False
    if error_code and changed:
        message.error_code = error_code[:20]
    if changed:
        message.save(update_fields=["status", "status_updated_at", "error_code"])
    if opted_out:
        _record_opt_out(message, error_code=error_code, now=now)
    return message


# --- staff (the dunning queue page) -------------------------------------------------------------------

def _manual_step(case: DunningCase, kind: str, *, now: datetime) -> DunningStep:
    n = DunningStep.objects.filter(case=case, number__gte=MANUAL_STEP_BASE).count() + 1
    return DunningStep.objects.create(case=case, key=f"manual-{n}:{kind}", number=MANUAL_STEP_BASE + n, kind=kind,
                                      due_at=now)


@transaction.atomic
def resend_card_link(case: DunningCase, actor: Actor, now: datetime) -> list[DunningMessage]:
    """Send the card-update link again now, by SMS (with consent; outside quiet hours, else at their
    end) and by email. Raises CaseClosed for a closed case."""
    case = lock_case(case.pk)
    if case.status != DunningCaseStatus.OPEN:
        raise CaseClosed("This case is closed; there is nothing to chase.")
    record_case_event(case, kind=EventKind.DUNNING, now=now, actor=actor, summary="Card-update link resent by staff",
                      payload={})
    made = []
    kinds = [StepKind.EMAIL] + ([StepKind.SMS] if case.member.can_receive_sms else [])
    for kind in kinds:
        step = _manual_step(case, kind, now=now)
        run_message_step(case, step, now=now)
        made += list(DunningMessage.objects.filter(step=step))
    refresh_next_action(case)
    return made
