"""The outbox destination that sends a member-page link (a MEMBER_LINK timeline event) by email or
by SMS, through `integrations.messaging` like the dunning messages. The member asked for it a
moment ago, so it goes at any automation stage and outside the quiet hours too; SMS consent is
checked again at send time. The text names the practice and nothing clinical."""

from __future__ import annotations

import logging
from datetime import datetime

from integrations.messaging import email as email_sender
from integrations.messaging import sms
from integrations.messaging.destinations import status_callback_url
from integrations.outbox import PermanentDeliveryError, RetryableDeliveryError
from memberships.models import AutomationStage, Event, EventKind

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
                result = sms.send_sms(to=member.phone, body=message_body(link), status_callback=status_callback_url())
            except sms.SmsUnavailable as exc:
                raise RetryableDeliveryError(str(exc)) from exc
            except sms.SmsError as exc:
                raise PermanentDeliveryError(str(exc)) from exc
            logger.info("member link %s sent by sms", link.pk)
            return {"provider_id": result.provider_id}
        try:
            ref = email_sender.send_email(to=member.email, subject=SUBJECT, body=message_body(link),
                                          message_ref=f"member-link-{link.pk}")
        except email_sender.EmailUnavailable as exc:
            raise RetryableDeliveryError(str(exc)) from exc
        logger.info("member link %s sent by email", link.pk)
        return {"provider_id": ref}
