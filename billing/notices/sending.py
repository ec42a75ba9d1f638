"""What became of a notice's channels: the outbox destination that sends them
(`integrations.messaging.notices`) asks whether a notice is still worth sending and reports each
channel sent, skipped or failed here. Each report is recorded once (a repeat of a finished channel
changes nothing) with a timeline event; ids and dates only."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

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
    if status == ChannelStatus.SENT:
        record_event(membership=notice.membership, member=notice.member, kind=EventKind.MESSAGE_SENT,
                     summary=f"{what} sent by {label} ({when})",
                     payload={"notice_id": notice.pk, "channel": channel, "sent": True}, actor=SYSTEM, now=now)
    elif status == ChannelStatus.UNCERTAIN:
        record_event(membership=notice.membership, member=notice.member, kind=EventKind.NOTE,
                     summary=f"{what} may have been sent by {label} ({when}): {note or 'outcome not recorded'}",
                     payload={"notice_id": notice.pk, "channel": channel, "outcome": status}, actor=SYSTEM, now=now)
    else:
        record_event(membership=notice.membership, member=notice.member, kind=EventKind.NOTE,
                     summary=f"{what} not sent by {label} ({when}): {note or status}",
                     payload={"notice_id": notice.pk, "channel": channel, "outcome": status}, actor=SYSTEM, now=now)
    return notice


def _notice_status(notice: MemberNotice) -> str:
    statuses = [notice.email_status, notice.sms_status]
    if ChannelStatus.SENT in statuses:
        return NoticeStatus.SENT
    if ChannelStatus.QUEUED in statuses:
        return NoticeStatus.QUEUED
    return NoticeStatus.UNCERTAIN if ChannelStatus.UNCERTAIN in statuses else NoticeStatus.SKIPPED


@transaction.atomic
def rearm_channel(*, notice_id: int, channel: str, now: datetime) -> bool:
    """A manager redelivers a channel that may have been sent: it is queued again (and the notice
    with it, unless another channel went). Returns whether it was such a channel."""
    notice = MemberNotice.objects.select_for_update().filter(pk=notice_id).first()
    if notice is None or channel not in CHANNELS or channel_status(notice, channel) != ChannelStatus.UNCERTAIN:
        return False
    setattr(notice, "sms_status" if channel == "sms" else "email_status", ChannelStatus.QUEUED)
    notice.status = _notice_status(notice)
    notice.save(update_fields=["email_status", "sms_status", "status"])
    return True
