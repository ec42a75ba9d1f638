"""SMS holds: a reply that looks like a refusal without being a plain STOP holds the member's
automated texts until a person reads it (`open_hold`); the person says whether it was an opt-out
(recorded then, like a STOP) or not (texts resume at once) with `clear_hold`. The SMS sender asks
`is_held` before every automated text. Logs carry ids only, never the text."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from memberships import services as ledger
from memberships.models import EventKind, Member
from memberships.services.common import Actor, record_event, write_audit

from ..models import Delivery, DeliveryStatus, InboundEvent, SmsHold, SmsHoldOutcome

logger = logging.getLogger(__name__)

# A held text is looked at again this often (and at once when the hold is cleared).
RECHECK = timedelta(minutes=30)


class HoldAlreadyCleared(Exception):
    pass


def is_held(member_id: int) -> bool:
    return SmsHold.objects.filter(member_id=member_id, cleared_at__isnull=True).exists()


def open_holds(*, practice_id: int | None) -> QuerySet[SmsHold]:
    """The open holds, oldest first (a practice's, or every practice's for `None`)."""
    rows = SmsHold.objects.filter(cleared_at__isnull=True).select_related("member", "practice")
    if practice_id is not None:
        rows = rows.filter(practice_id=practice_id)
    return rows.order_by("opened_at", "id")


def open_hold(*, member: Member, inbound: InboundEvent | None, text: str, reason: str, now: datetime) -> SmsHold:
    """Hold the member's automated texts for a person to read `text`. A member already held keeps
    the hold they have (the newer text is added to it, so the person reads both)."""
    with transaction.atomic():
        current = SmsHold.objects.select_for_update().filter(member=member, cleared_at__isnull=True).first()
        if current is not None:
            current.text = f"{current.text}\n{text}"[-320:]
            current.save(update_fields=["text"])
            return current
        try:
            with transaction.atomic():
                hold = SmsHold.objects.create(practice_id=member.practice_id, member=member, inbound=inbound,
                                              text=text[:320], reason=reason[:40], opened_at=now)
        except IntegrityError:  # another reply of the same member opened one at this instant
            return SmsHold.objects.get(member=member, cleared_at__isnull=True)
        record_event(member=member, kind=EventKind.NOTE, now=now, actor=Actor.system("sms"),
                     summary="SMS reply to review: automated texts held until staff read it",
                     payload={"sms_hold_id": hold.pk})
    logger.info("sms hold %s opened for member %s", hold.pk, member.pk)
    return hold


@transaction.atomic
def clear_hold(*, hold_id: int, opted_out: bool, actor: Actor, now: datetime) -> SmsHold:
    """A person read the reply: an opt-out (recorded for the member, as a STOP would be) or not (the
    held texts go now). Raises HoldAlreadyCleared when someone else decided first."""
    hold = SmsHold.objects.select_for_update().select_related("member").get(pk=hold_id)
    if hold.cleared_at is not None:
        raise HoldAlreadyCleared(f"SMS hold {hold.pk} was already cleared")
    hold.cleared_at, hold.cleared_by = now, actor.user
    hold.outcome = SmsHoldOutcome.OPTED_OUT if opted_out else SmsHoldOutcome.RESUMED
    hold.save(update_fields=["cleared_at", "cleared_by", "outcome"])
    member = hold.member
    if opted_out:
        ledger.record_sms_opt_out(member=member, actor=actor, now=now, source="reply read by staff")
    else:
        record_event(member=member, kind=EventKind.NOTE, now=now, actor=actor,
                     summary="SMS reply read by staff: not an opt-out, texts resume",
                     payload={"sms_hold_id": hold.pk})
    # The texts deferred by the hold are looked at again now (an opt-out sends them by email).
    Delivery.objects.filter(destination="member_message", event__member_id=member.pk,
                            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
                            next_attempt_at__gt=now).update(next_attempt_at=now)
    write_audit(actor=actor, action="sms_hold_clear", obj=hold, member=member,
                detail={"outcome": hold.outcome}, now=now)
    logger.info("sms hold %s cleared (%s)", hold.pk, hold.outcome)
    return hold
