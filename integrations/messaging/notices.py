"""Outbox destination for member notices (`billing.notices`): each queued channel of a notice is a
timeline event (kind NOTE, payload `notice_id` and `channel`) that becomes one email or one SMS.
At send time, as for the dunning messages: SMS consent and STOP are checked again (a STOP that came
in since is honoured; Twilio's 21610 is recorded as an opt-out), the member's quiet hours defer the
message to their end — the email too: a notice is never sent at night — and an SMS hold defers an
automated text until a person read the member's reply. What a notice says is read when it goes
(`notices.settle_terms`: the amount the renewal charges then, after a tier change, a withdrawn
change or a new price); a notice that no longer applies then (the renewal stopped, moved, passed or
charges nothing; nothing left to expire) is withdrawn with why, both channels at once. Needs the
`notices` stage (below it: shadowed). A provider whose answer was lost after the request went may
have sent it: "may have been sent", not retried."""

from __future__ import annotations

import logging
from datetime import datetime

from billing import notices
from billing.dunning.quiet import quiet_until
from billing.models import ChannelStatus
from billing.notices import wording
from memberships.models import AutomationStage, Event, EventKind

from ..outbox import DeferDelivery, PermanentDeliveryError, RedeliveryRefused
from . import email as email_sender
from . import holds, outcomes, sms

logger = logging.getLogger(__name__)


class MemberNoticeDestination:
    name = "member_notice"

    def wants(self, event: Event) -> bool:
        return event.kind == EventKind.NOTE and "notice_id" in event.payload and event.payload.get("channel") in (
            "email", "sms") and "outcome" not in event.payload

    def required_stage(self, event: Event) -> str:
        return AutomationStage.NOTICES

    def describe(self, event: Event) -> str:
        kind = wording.timeline_label(event.payload.get("notice_kind", "")).lower()
        channel = "SMS" if event.payload.get("channel") == "sms" else "email"
        return f"send the {kind} by {channel} to member {event.member_id}"

    def deliver(self, event: Event, *, delivery, now: datetime) -> dict:
        notice = notices.notice_for_sending(event.payload.get("notice_id"), lock=True)
        channel = event.payload.get("channel")
        if notice is None:
            raise PermanentDeliveryError("no such notice")
        if notices.channel_status(notice, channel) != ChannelStatus.QUEUED:
            return {"notice": notice.status, "replay": True}
        why = notices.no_longer_due(notice, now=now)
        if why:
            notices.withdraw_notice(notice_id=notice.pk, why=why, now=now)
            return {"withdrawn": why}
        member = notice.member
        if channel == "sms" and not member.can_receive_sms:
            note = "opted out (STOP)" if member.sms_opted_out_at else "no SMS consent at send time"
            notices.record_channel(notice_id=notice.pk, channel=channel, status=ChannelStatus.SKIPPED, note=note,
                                   now=now)
            return {"skipped": note}
        until = quiet_until(member=member, now=now)
        if until is not None:
            raise DeferDelivery(until, "quiet hours")
        notices.settle_terms(notice)            # the amount, and what expires, as they are now
        if channel == "sms":
            return self._sms(notice, delivery=delivery, now=now)
        return self._email(notice, delivery=delivery, now=now)

    def _sms(self, notice, *, delivery, now: datetime) -> dict:
        member = notice.member
        if holds.is_held(member.pk):
            raise DeferDelivery(now + holds.RECHECK, "held: a reply of the member waits for staff")
        try:
            with outcomes.provider_answer(delivery, refused=_refused(notice, "sms", now=now)):
                result = sms.send_sms(to=member.phone, body=wording.sms_body(notice, name=_name(member, "sms")))
        except sms.SmsRecipientOptedOut as exc:
            outcomes.record_opt_out(member=member, exc=exc, now=now)
            notices.record_channel(notice_id=notice.pk, channel="sms", status=ChannelStatus.SKIPPED,
                                   note="the number opted out", now=now)
            return outcomes.opted_out_answer(exc)
        notices.record_channel(notice_id=notice.pk, channel="sms", status=ChannelStatus.SENT, now=now)
        logger.info("notice %s sent by sms to member %s", notice.pk, member.pk)
        return {"provider_id": result.provider_id}

    def _email(self, notice, *, delivery, now: datetime) -> dict:
        member = notice.member
        if not member.email:
            notices.record_channel(notice_id=notice.pk, channel="email", status=ChannelStatus.SKIPPED,
                                   note="no email address", now=now)
            return {"skipped": "no email"}
        subject = wording.email_subject(notice, name=_name(member, "email"))
        with outcomes.provider_answer(delivery, refused=_refused(notice, "email", now=now)):
            ref = email_sender.send_email(to=member.email, subject=subject, body=wording.email_body(notice),
                                          message_ref=f"member-notice-{notice.pk}")
        notices.record_channel(notice_id=notice.pk, channel="email", status=ChannelStatus.SENT, now=now)
        logger.info("notice %s sent by email to member %s", notice.pk, member.pk)
        return {"provider_id": ref}

    def on_uncertain(self, event: Event, *, delivery, now: datetime) -> None:
        """The sending stopped before the provider's answer was recorded: the channel may have gone
        (not "sent", not queued for ever), for the notice's record and the member's timeline."""
        notices.record_channel(notice_id=event.payload.get("notice_id"), channel=event.payload.get("channel"),
                               status=ChannelStatus.UNCERTAIN, now=now,
                               note="the provider's answer was not recorded (the sending stopped, or the "
                                    "answer was lost)")

    def on_redeliver(self, event: Event, *, delivery, now: datetime) -> None:
        """A manager sends it again (it failed, was given up, or may have been sent): the channel is
        queued again, so the delivery really sends it, to the member's contact on file now; refused
        with the reason when it could not go (a STOP holds, the renewal passed or moved)."""
        try:
            notices.rearm_channel(notice_id=event.payload.get("notice_id"), channel=event.payload.get("channel"),
                                  now=now)
        except notices.NoticeNotResendable as exc:
            raise RedeliveryRefused(exc.message) from exc

    def on_dead(self, event: Event, *, delivery, now: datetime) -> None:
        """Retries exhausted (the provider stayed down): the channel failed, for the notice's record."""
        channel = event.payload.get("channel")
        notices.record_channel(notice_id=event.payload.get("notice_id"), channel=channel,
                               status=ChannelStatus.FAILED, now=now,
                               note=f"could not be delivered: the provider could not be reached after "
                                    f"{delivery.attempts} attempts")


def _name(member, channel: str) -> str:
    """The member's first name when a household shares the number or address, else ""."""
    if not notices.shared_with_household(member, channel):
        return ""
    return wording.addressee(member.first_name, channel=channel)


def _refused(notice, channel: str, *, now: datetime):
    """The notice's record of a provider's refusal for good: the channel failed, with why (a wrong
    address or number, for the desk to put right)."""
    def record(refusal: outcomes.Refusal) -> None:
        notices.record_channel(notice_id=notice.pk, channel=channel, status=ChannelStatus.FAILED,
                               note=refusal.reason, now=now)
    return record
