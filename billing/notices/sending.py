"""What became of a notice's channels: the outbox destination that sends them
(`integrations.messaging.notices`) asks whether a notice is still worth sending and reports each
channel sent, skipped or failed here. Each report is recorded once (a repeat of a finished channel
changes nothing) with a timeline event; ids and dates only."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships.errors import LedgerError
from memberships.models import EventKind, MembershipStatus
from memberships.services.common import record_event
from memberships.services.refill import preview_next_boundary

from ..dunning.quiet import member_zone
from ..models import ChannelStatus, MemberNotice, NoticeKind, NoticeStatus
from .planning import SYSTEM, not_renewing
from .wording import day, timeline_label

CHANNELS = ("email", "sms")
FINISHED = (ChannelStatus.SENT, ChannelStatus.SKIPPED, ChannelStatus.FAILED, ChannelStatus.UNCERTAIN)


def notice_for_sending(notice_id) -> MemberNotice | None:
    if not notice_id:
        return None
    return (MemberNotice.objects.select_related("practice", "member__practice", "member__home_location",
                                                "membership__tier", "membership__pending_tier")
            .filter(pk=notice_id).first())


def channel_status(notice: MemberNotice, channel: str) -> str:
    return notice.sms_status if channel == "sms" else notice.email_status


def no_longer_due(notice: MemberNotice, *, now: datetime) -> str:
    """Why a queued notice should not go after all ("" when it should): the membership stopped
    (paused, cancelled, past due), the renewal moved to another day or passed, (upcoming charge) the
    processor will not charge then (cancelled at the period end, collection paused), or (expiring
    credit) the member has used what would have expired since the notice was queued."""
    membership = notice.membership
    if membership.status != MembershipStatus.ACTIVE:
        return f"the membership is {membership.get_status_display().lower()}"
    if now >= notice.boundary_at:
        return "the renewal passed before it could go"
    end = membership.current_period_end
    if end is None or (end != notice.boundary_at
                       and end.astimezone(member_zone(notice.member)).date() != notice.boundary_date):
        return "the renewal date changed"
    if notice.kind == NoticeKind.UPCOMING_CHARGE and not_renewing([membership]):
        return "the membership does not renew then (it ends or is paused at the processor)"
    if notice.kind == NoticeKind.EXPIRING_CREDIT:
        tier = membership.pending_tier or membership.tier
        if not any(q > 0 for q in preview_next_boundary(membership=membership, tier=tier).values()):
            return "nothing is left to expire"
    return ""


@transaction.atomic
def record_channel(*, notice_id: int, channel: str, status: str, now: datetime, note: str = "") -> MemberNotice:
    """Record what one channel did (`ChannelStatus.SENT`, `SKIPPED`, `FAILED`, or `UNCERTAIN`: its
    sending stopped before the provider's answer was recorded, with why), once; the notice is sent
    when a channel went, "may have been sent" when none is left to go and one may have, skipped when
    none went."""
    notice = (MemberNotice.objects.select_for_update(of=("self",)).select_related("member__practice", "membership")
              .get(pk=notice_id))
    if channel not in CHANNELS or channel_status(notice, channel) in FINISHED:
        return notice
    setattr(notice, "sms_status" if channel == "sms" else "email_status", status)
    if status == ChannelStatus.SENT and notice.sent_at is None:
        notice.sent_at = now
    notice.status = _notice_status(notice)
    label = "SMS" if channel == "sms" else "email"
    if note:
        notice.note = "; ".join(part for part in (notice.note, f"{label}: {note}") if part)[:200]
    notice.save(update_fields=["email_status", "sms_status", "status", "sent_at", "note"])
    what, when = timeline_label(notice.kind), day(notice.boundary_date)
    kind, outcome = EventKind.NOTE, {"outcome": status}
    if status == ChannelStatus.SENT:
        kind, outcome = EventKind.MESSAGE_SENT, {"sent": True}
        summary = f"{what} sent by {label} ({when})"
    elif status == ChannelStatus.UNCERTAIN:
        summary = f"{what} may have been sent by {label} ({when}): {note or 'outcome not recorded'}"
    else:
        summary = f"{what} not sent by {label} ({when}): {note or status}"
    record_event(membership=notice.membership, member=notice.member, kind=kind, summary=summary,
                 payload={"notice_id": notice.pk, "channel": channel, **outcome}, actor=SYSTEM, now=now)
    return notice


def _notice_status(notice: MemberNotice) -> str:
    statuses = [notice.email_status, notice.sms_status]
    if ChannelStatus.SENT in statuses:
        return NoticeStatus.SENT
    if ChannelStatus.QUEUED in statuses:
        return NoticeStatus.QUEUED
    return NoticeStatus.UNCERTAIN if ChannelStatus.UNCERTAIN in statuses else NoticeStatus.SKIPPED


class NoticeNotResendable(LedgerError):
    """A manager's redelivery of a notice's channel that could not go now; the message says why."""

    code = "notice_not_resendable"
    http_status = 409


def resend_refusal(notice: MemberNotice, channel: str, *, now: datetime) -> str:
    """Why a channel a manager redelivers could not go now ("" when it can): the notice is no longer
    due, the member replied STOP or has no consent or address for that channel."""
    why = no_longer_due(notice, now=now)
    if why:
        return f"The notice is no longer due: {why}."
    member = notice.member
    if channel == "sms" and member.sms_opted_out_at is not None:
        return "The member replied STOP to our texts: no SMS can go until they text START."
    if channel == "sms" and not member.can_receive_sms:
        return "The member has no mobile number on file or has not agreed to texts."
    if channel == "email" and not member.email:
        return "The member has no email address on file."
    return ""


@transaction.atomic
def rearm_channel(*, notice_id: int, channel: str, now: datetime) -> bool:
    """A manager redelivers a channel that did not go (it failed: the provider refused it or stayed
    unreachable; or it may have been sent): it is queued again (and the notice with it, unless
    another channel went), with a line on the timeline, and goes to the member's contact on file
    then. Raises `NoticeNotResendable`, changing nothing, when it could not go (`resend_refusal`).
    Returns whether it was such a channel (False: it went or was skipped, and stays so)."""
    notice = (MemberNotice.objects.select_for_update(of=("self",))
              .select_related("member__practice", "membership__tier", "membership__pending_tier")
              .filter(pk=notice_id).first())
    if notice is None or channel not in CHANNELS or channel_status(notice, channel) not in (
            ChannelStatus.FAILED, ChannelStatus.UNCERTAIN):
        return False
    why = resend_refusal(notice, channel, now=now)
    if why:
        raise NoticeNotResendable(why)
    was = ChannelStatus(channel_status(notice, channel)).label.lower()
    setattr(notice, "sms_status" if channel == "sms" else "email_status", ChannelStatus.QUEUED)
    notice.status = _notice_status(notice)
    label = "SMS" if channel == "sms" else "email"
    notice.note = "; ".join(part for part in (notice.note, f"{label}: redelivered by a manager") if part)[-200:]
    notice.save(update_fields=["email_status", "sms_status", "status", "note"])
    record_event(membership=notice.membership, member=notice.member, kind=EventKind.NOTE,
                 summary=f"{timeline_label(notice.kind)} to be sent again by {label}, redelivered by a manager "
                         f"({was} before; {day(notice.boundary_date)})",
                 payload={"notice_id": notice.pk, "channel": channel, "outcome": "redelivered"}, actor=SYSTEM, now=now)
    return True
