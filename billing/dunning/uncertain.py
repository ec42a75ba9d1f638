"""A card-update message whose sending stopped half-way: the outbox handed it to the provider (SMS,
email) and the worker stopped before the answer was recorded, so it may have reached the member or
not. The case's history says exactly that — never "sent", never pending for ever — and it is not
sent again unless a manager redelivers it (then it waits to go like any pending message)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.models import DunningMessage, MessageChannel, MessageStatus
from memberships.models import EventKind

from .cases import record_case_event


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
                      summary=f"Card-update {label} may have been sent: the sending stopped before the "
                              f"provider's answer was recorded. Not sent again unless a manager redelivers it.",
                      payload={"message_id": message.pk, "channel": message.channel, "uncertain": True})
    return True


def rearm_uncertain_message(*, message_id: int, now: datetime) -> bool:
    """A manager redelivers a message that may have been sent: it waits to go again. Returns whether
    it was one."""
    return DunningMessage.objects.filter(pk=message_id, status=MessageStatus.UNCERTAIN).update(
        status=MessageStatus.PENDING, status_updated_at=now) == 1
