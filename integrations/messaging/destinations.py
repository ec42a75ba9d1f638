"""Outbox destination for member messages: a DUNNING_MESSAGE event becomes one SMS or email. Consent
is checked again at send time (a STOP may have come in since the message was queued); an opted-out
number (Twilio 21610) is recorded and the step falls back to email. A provider whose answer was lost
after the request went (a timeout while Twilio or the mail server had it) may have sent it: "may have
been sent", never retried by itself. Quiet hours are checked again at
send time too: an SMS whose delivery (or a retry of it after Twilio failed) falls inside them is
deferred to their end, never sent at night. A member whose reply waits for staff (an SMS hold) gets
no automated SMS until a person clears it."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from billing import dunning
from billing.dunning.quiet import quiet_until
from billing.dunning.selectors import message_for_sending
from billing.models import DunningCaseStatus, MessageChannel, MessageStatus
from memberships.models import AutomationStage, Event, EventKind

from billing.dunning.errors import MessageNotResendable

from ..outbox import DeferDelivery, PermanentDeliveryError, RedeliveryRefused
from . import email as email_sender
from . import holds, outcomes, sms

logger = logging.getLogger(__name__)


def status_callback_url() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("twilio_status")


class MemberMessageDestination:
    name = "member_message"

    def wants(self, event: Event) -> bool:
        return event.kind == EventKind.DUNNING_MESSAGE and not event.payload.get("shadowed")

    def required_stage(self, event: Event) -> str:
        return AutomationStage.DUNNING

    def describe(self, event: Event) -> str:
        channel = "SMS" if event.payload.get("channel") == MessageChannel.SMS else "email"
        return f"send the card-update {channel} to member {event.member_id}"

    def held_back(self, event: Event, *, now: datetime) -> None:
        """The outbox held it back (the member's location is below dunning now): shadowed, not pending."""
        dunning.record_message_held_back(message_id=event.payload.get("message_id"), now=now)

    def on_uncertain(self, event: Event, *, delivery, now: datetime) -> None:
        """The sending stopped before the provider's answer was recorded: the message may have
        gone; the case's history says so, and it is not sent again unless a manager redelivers."""
        dunning.record_message_uncertain(message_id=event.payload.get("message_id"), now=now)

    def on_dead(self, event: Event, *, delivery, now: datetime) -> None:
        """The provider stayed unreachable for every attempt: the message failed, with why, on the
        case (never pending for ever); a manager may redeliver it."""
        dunning.record_message_dead(message_id=event.payload.get("message_id"), now=now,
                                    why=f"the provider could not be reached after {delivery.attempts} attempts")

    def on_redeliver(self, event: Event, *, delivery, now: datetime) -> None:
        """A manager sends it again (it failed, was given up, or may have been sent): the message
        waits to go, to the member's contact on file now, so the delivery sends it; refused with
        the reason when it could not go (a STOP holds, the follow-up ended)."""
        try:
            dunning.rearm_message(message_id=event.payload.get("message_id"), now=now)
        except MessageNotResendable as exc:
            raise RedeliveryRefused(exc.message) from exc

    def deliver(self, event: Event, *, delivery, now: datetime) -> dict:
        message = message_for_sending(event.payload.get("message_id"))
        if message is None:
            raise PermanentDeliveryError("no such message")
        if message.status != MessageStatus.PENDING:
            return {"message": message.status, "replay": True}
        if message.case.status != DunningCaseStatus.OPEN and dunning.withdraw_message(message_id=message.pk, now=now):
            return {"skipped": "payment follow-up ended"}    # paid (or cancelled) since it was queued
        member = message.case.member

        def refused(refusal: outcomes.Refusal) -> None:      # failed at once, with why, on the case
            dunning.record_message_undeliverable(message_id=message.pk, now=now, error_code=refusal.code,
                                                 note=refusal.note)

        if message.channel == MessageChannel.SMS:
            if not member.can_receive_sms:
                dunning.record_message_undeliverable(message_id=message.pk, now=now, opted_out=True,
                                                     note="no SMS consent at send time")
                return {"skipped": "no consent"}
            until = quiet_until(member=member, now=now)
            if until is not None:
                raise DeferDelivery(until, "quiet hours")
            if holds.is_held(member.pk):
                raise DeferDelivery(now + holds.RECHECK, "held: a reply of the member waits for staff")
            try:
                with outcomes.provider_answer(delivery, refused=refused):
                    result = sms.send_sms(to=member.phone, body=message.body, status_callback=status_callback_url())
            except sms.SmsRecipientOptedOut as exc:
                dunning.record_message_undeliverable(message_id=message.pk, now=now, opted_out=True,
                                                     error_code=exc.code)
                return outcomes.opted_out_answer(exc)
            dunning.record_message_sent(message_id=message.pk, provider_id=result.provider_id,
                                        status=result.status, now=now)
            logger.info("dunning sms %s sent for case %s", message.pk, message.case_id)
            return {"provider_id": result.provider_id, "status": result.status}
        if not member.email:
            dunning.record_message_undeliverable(message_id=message.pk, now=now, note="no email address")
            return {"skipped": "no email"}
        with outcomes.provider_answer(delivery, refused=refused):    # a wrong address: for the desk to put right
            ref = email_sender.send_email(to=member.email, subject=message.subject, body=message.body,
                                          message_ref=f"dunning-message-{message.pk}")
        dunning.record_message_sent(message_id=message.pk, provider_id=ref, status=MessageStatus.SENT, now=now)
        logger.info("dunning email %s sent for case %s", message.pk, message.case_id)
        return {"provider_id": ref}
