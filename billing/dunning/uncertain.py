"""A card-update message the outbox could not see through: its sending stopped half-way (the
provider had it and the answer was never recorded — the worker stopped, or the answer timed out), so
it may have reached the member or not; or the outbox gave it up (the provider stayed unreachable).
The case's history says exactly that — never "sent", never pending for ever — and it is not sent
again unless a manager redelivers it (then it waits to go like any pending message, to the member's
contact on file then, or the manager is told why it cannot)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.models import DunningMessage, MessageChannel, MessageStatus
from memberships.models import EventKind

from .cases import record_case_event
from .errors import MessageNotResendable
from .messages import nothing_to_chase, record_message_undeliverable
from .rendering import render_email, render_sms


@transaction.atomic
def record_message_uncertain(*, message_id: int, now: datetime) -> bool:
    """The message may have been sent: recorded on it, with a note on the case's timeline. Returns
    whether it was still pending (a message whose outcome is known keeps it)."""
    message = (DunningMessage.objects.select_for_update(of=("self",))
               .select_related("case__member__practice", "case__membership").filter(pk=message_id).first())
    if message is None or message.status != MessageStatus.PENDING:
        return False
    message.status, message.status_updated_at = MessageStatus.UNCERTAIN, now
    message.save(update_fields=["status", "status_updated_at"])
    label = "SMS" if message.channel == MessageChannel.SMS else "email"
    record_case_event(message.case, kind=EventKind.DUNNING, now=now,
                      summary=f"Card-update {label} may have been sent: the provider's answer was not recorded "
                              f"(the sending stopped, or the answer was lost). Not sent again unless a manager "
                              f"redelivers it.",
                      payload={"message_id": message.pk, "channel": message.channel, "uncertain": True})
    return True


def record_message_dead(*, message_id: int, now: datetime, why: str) -> bool:
    """The outbox gave the message up (the provider stayed unreachable for every attempt): it failed,
    with why, on the message and the case's timeline — never pending for ever — and a manager may
    redeliver it. Returns whether it was still pending."""
    if not DunningMessage.objects.filter(pk=message_id, status=MessageStatus.PENDING).exists():
        return False
    record_message_undeliverable(message_id=message_id, now=now, note=why)
    return True


@transaction.atomic
def rearm_message(*, message_id: int, now: datetime) -> bool:
    """A manager redelivers a message that did not go (it failed: the provider stayed down or refused
    the number; or it may have been sent): it waits to go again, rendered afresh — a new card link,
    as an old one expires — and goes to the member's contact on file then (the number the desk put
    right). Raises `MessageNotResendable`, changing nothing, when it could not go: the follow-up
    ended, the member replied STOP or never agreed to texts, no email address. Returns whether it
    waits to go (False: it went or was skipped, and stays so)."""
    message = (DunningMessage.objects.select_for_update(of=("self",))
               .select_related("case__member__practice", "case__practice", "case__policy", "case__membership")
               .filter(pk=message_id).first())
    if message is None or message.status not in (MessageStatus.PENDING, MessageStatus.FAILED, MessageStatus.UNCERTAIN):
        return False
    case, member = message.case, message.case.member
    if nothing_to_chase(case):
        raise MessageNotResendable(f"The payment follow-up ended ({case.get_status_display().lower()}): "
                                   "there is nothing to send.")
    if message.channel == MessageChannel.SMS and member.sms_opted_out_at is not None:
        raise MessageNotResendable("The member replied STOP to our texts: no SMS can go until they text START. "
                                   "Send the card link by email or call them.")
    if message.channel == MessageChannel.SMS and not member.can_receive_sms:
        raise MessageNotResendable("The member has no mobile number on file or has not agreed to texts.")
    if message.channel == MessageChannel.EMAIL and not member.email:
        raise MessageNotResendable("The member has no email address on file.")
    if message.channel == MessageChannel.SMS:
        message.subject, message.body = "", render_sms(case.policy, case)
    else:
        message.subject, message.body = render_email(case.policy, case)
    was = message.get_status_display().lower()
    message.status, message.status_updated_at, message.error_code = MessageStatus.PENDING, now, ""
    message.save(update_fields=["status", "status_updated_at", "error_code", "subject", "body"])
    label, to = ("SMS", "number") if message.channel == MessageChannel.SMS else ("email", "address")
    record_case_event(case, kind=EventKind.DUNNING, now=now,
                      summary=f"Card-update {label} to be sent again, redelivered by a manager ({was} before): "
                              f"it goes to the {to} on file now",
                      payload={"message_id": message.pk, "channel": message.channel, "redelivered": True})
    return True
