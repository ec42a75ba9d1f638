"""The outbox destination that sends a member-page link (a MEMBER_LINK timeline event) by email or
by SMS, through `integrations.messaging` like the dunning messages. The member asked for it a
moment ago, so it goes at any automation stage and outside the quiet hours too; SMS consent (and
the email address) is checked again at send time, and a number Twilio says opted out (21610) is
recorded as an opt-out, as for every member text. The text names the practice and nothing clinical.

As every member message (Twilio and SMTP take no idempotency key), it is never sent twice by itself:
once the provider has it (`handed_over`), or when the provider's answer was lost after the request
went, a failure reads "may have been sent" (`on_uncertain`), with a line on the member's timeline
saying the member can ask for another link — each works once and only for a few minutes, so a lost
one is no risk for long and a new one is the way on. A manager's redelivery resends the same link
only while it can still open the page (`on_redeliver`)."""

from __future__ import annotations

import logging
from datetime import datetime

from integrations.messaging import email as email_sender
from integrations.messaging import outcomes, sms
from integrations.messaging.destinations import status_callback_url
from integrations.outbox import PermanentDeliveryError, RedeliveryRefused
from memberships.models import AutomationStage, Event, EventKind
from memberships.services.common import Actor, record_event

from ..models import MemberLink
from . import links

logger = logging.getLogger(__name__)

SUBJECT = "Your membership page link"


def message_body(link: MemberLink) -> str:
    practice = link.member.practice.name
    return (f"{practice}: here is your link to see your membership: {links.link_url(link)} - it works once, "
            f"for {links.link_minutes()} minutes. If you did not ask for it, ignore this message.")


class MemberLinkDestination:
    name = "member_link"

    def wants(self, event: Event) -> bool:
        return event.kind == EventKind.MEMBER_LINK

    def required_stage(self, event: Event) -> str:
        return AutomationStage.OBSERVE

    def describe(self, event: Event) -> str:
        return f"send the member page link to member {event.member_id} by {event.payload.get('channel')}"

    def deliver(self, event: Event, *, delivery, now: datetime) -> dict:
        link = MemberLink.objects.select_related("member__practice").filter(pk=event.payload.get("link_id")).first()
        if link is None:
            raise PermanentDeliveryError("no such link")
        if links.refusal(link, now=now) is not None:
            return {"skipped": "expired or used before it was sent"}
        member = link.member
        if link.channel == links.SMS:
            if not member.can_receive_sms:
                return {"skipped": "no consent"}
            try:
                with outcomes.provider_answer(delivery):
                    result = sms.send_sms(to=member.phone, body=message_body(link),
                                          status_callback=status_callback_url())
            except sms.SmsRecipientOptedOut as exc:    # a STOP we had not heard of: recorded
                outcomes.record_opt_out(member=member, exc=exc, now=now)
                return outcomes.opted_out_answer(exc)
            logger.info("member link %s sent by sms", link.pk)
            return {"provider_id": result.provider_id}
        if not member.email:                           # removed since the member asked: nowhere to send
            return {"skipped": "no email"}
        with outcomes.provider_answer(delivery):       # an address refused for good fails at once
            ref = email_sender.send_email(to=member.email, subject=SUBJECT, body=message_body(link),
                                          message_ref=f"member-link-{link.pk}")
        logger.info("member link %s sent by email", link.pk)
        return {"provider_id": ref}

    def on_uncertain(self, event: Event, *, delivery, now: datetime) -> None:
        """The sending stopped before the provider's answer was recorded: the link may have gone. Not
        sent again by itself; the member's timeline says so, and that they can ask for another."""
        _note(event, now=now, outcome="uncertain",
              summary=f"Member page link by {_label(event)} may have been sent: the provider's answer was not "
                      f"recorded. Not sent again by itself; the member can ask for another link (each works once, "
                      f"for {links.link_minutes()} minutes).")

    def on_dead(self, event: Event, *, delivery, now: datetime) -> None:
        """The provider stayed unreachable: the link never went (and has expired by now)."""
        _note(event, now=now, outcome="failed",
              summary=f"Member page link by {_label(event)} not sent: the provider could not be reached. The "
                      f"member can ask for another link.")

    def on_redeliver(self, event: Event, *, delivery, now: datetime) -> None:
        """A manager resends the link only while it can still open the page; else refused: the
        member asks for a new one (a link works once, for a few minutes)."""
        link = MemberLink.objects.filter(pk=event.payload.get("link_id")).first()
        why = links.refusal(link, now=now) if link is not None else links.EXPIRED
        if why is not None:
            state = "was used" if why == links.USED else "has expired"
            raise RedeliveryRefused(f"This member page link {state} (a link works once, for "
                                    f"{links.link_minutes()} minutes): the member can ask for a new one on the "
                                    f"member page.")


def _label(event: Event) -> str:
    return "SMS" if event.payload.get("channel") == links.SMS else "email"


def _note(event: Event, *, now: datetime, outcome: str, summary: str) -> None:
    record_event(member=event.member, kind=EventKind.NOTE, summary=summary[:300], now=now,
                 payload={"link_id": event.payload.get("link_id"), "channel": event.payload.get("channel"),
                          "outcome": outcome}, actor=Actor.system("member page"))
