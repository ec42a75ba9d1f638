"""What became of a notice's channels: the outbox destination that sends them
(`integrations.messaging.notices`) asks here, when a channel is about to go, whether the notice still
applies (else it is withdrawn, with why) and what it says then — the amount the renewal will charge
and what would expire are read from the ledger at that moment, not when the notice was planned —
and reports each channel sent, skipped or failed. Each report is recorded once (a repeat of a
finished channel changes nothing) with a timeline event; ids and dates only."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from memberships.errors import LedgerError
from memberships.models import EventKind, Member, MembershipStatus
from memberships.services.common import record_event
from memberships.services.location_prices import Price, membership_price
from memberships.services.refill import preview_next_boundary

from ..dunning.quiet import member_zone
from ..models import ChannelStatus, MemberNotice, NoticeKind, NoticeSettings, NoticeStatus
from ..models.notices import DEFAULT_NOTICE_DAYS
from .planning import SYSTEM, not_renewing
from .wording import day, timeline_label

CHANNELS = ("email", "sms")
FINISHED = (ChannelStatus.SENT, ChannelStatus.SKIPPED, ChannelStatus.FAILED, ChannelStatus.UNCERTAIN)


def notice_for_sending(notice_id, *, lock: bool = False) -> MemberNotice | None:
    """The notice with what sending it reads. `lock`: its row locked for the caller's transaction
    (the outbox's, around the provider's call), so the channels of one notice, and a new planning
    of it, go one at a time."""
    if not notice_id:
        return None
    rows = MemberNotice.objects.select_related("practice", "member__practice", "member__home_location",
                                               "membership__tier", "membership__pending_tier")
    if lock:
        rows = rows.select_for_update(of=("self",))
    return rows.filter(pk=notice_id).first()


def channel_status(notice: MemberNotice, channel: str) -> str:
    return notice.sms_status if channel == "sms" else notice.email_status


def renewal_price(membership) -> Price:
    """What the renewal will charge, read now: the tier it renews into (a scheduled change's, else
    its own) at the price where the membership is priced."""
    return membership_price(membership, tier=membership.pending_tier or membership.tier)


def expiring_now(membership) -> dict[str, int]:
    """What the boundary would expire if it came now (service id → quantity): the member page's
    dry run."""
    tier = membership.pending_tier or membership.tier
    return {str(sid): q for sid, q in preview_next_boundary(membership=membership, tier=tier).items() if q > 0}


def _notice_days(notice: MemberNotice) -> int:
    row = NoticeSettings.objects.filter(practice_id=notice.practice_id).values_list(
        "upcoming_charge_days", "expiring_credit_days").first()
    upcoming, expiring = row or (DEFAULT_NOTICE_DAYS, DEFAULT_NOTICE_DAYS)
    return upcoming if notice.kind == NoticeKind.UPCOMING_CHARGE else expiring


def no_longer_due(notice: MemberNotice, *, now: datetime) -> str:
    """Why a queued notice should not go now ("" when it should), from the ledger's state now: the
    membership stopped (paused, cancelled, past due), the renewal moved to another day or passed,
    the practice now sends it fewer days before the renewal (it goes then), (upcoming charge) the
    processor will not charge then (cancelled at the period end, collection paused) or the renewal
    charges nothing, or (expiring credit) the member has used what would have expired since the
    notice was queued."""
    membership = notice.membership
    if membership.status != MembershipStatus.ACTIVE:
        return f"the membership is {membership.get_status_display().lower()}"
    if now >= notice.boundary_at:
        return "the renewal passed before it could go"
    end = membership.current_period_end
    zone = member_zone(notice.member)
    if end is None or (end != notice.boundary_at and end.astimezone(zone).date() != notice.boundary_date):
        return "the renewal date changed"
    days = _notice_days(notice)
    if now.astimezone(zone).date() < notice.boundary_date - timedelta(days=days):
        return f"not due yet: the practice now sends it {days} days before the renewal"
    if notice.kind == NoticeKind.UPCOMING_CHARGE:
        if not_renewing([membership]):
            return "the membership does not renew then (it ends or is paused at the processor)"
        if renewal_price(membership).cents <= 0:
            return "nothing will be charged at the renewal"
    if notice.kind == NoticeKind.EXPIRING_CREDIT and not expiring_now(membership):
        return "nothing is left to expire"
    return ""


def settle_terms(notice: MemberNotice) -> MemberNotice:
    """Just before a channel goes: what the notice says, as the ledger has it now — the amount the
    renewal will charge (a tier change, a scheduled change withdrawn, a new price since it was
    planned), and, until a channel went, what would expire (what the dashboard counts as named).
    Saved on the notice, so its record says what the member was told."""
    changed = []
    if notice.kind == NoticeKind.UPCOMING_CHARGE:
        price = renewal_price(notice.membership)
        if (notice.amount_cents, notice.currency) != (price.cents, price.currency):
            notice.amount_cents, notice.currency = price.cents, price.currency
            changed += ["amount_cents", "currency"]
    elif notice.sent_at is None:
        named = expiring_now(notice.membership)
        if named != notice.nudged:
            notice.nudged = named
            changed.append("nudged")
    if changed:
        notice.save(update_fields=changed)
    return notice


def shared_with_household(member, channel: str) -> bool:
    """Whether another member of the practice has the same mobile number (SMS) or email address: a
    household's notices then name whose membership each is about."""
    contact = {"phone": member.phone} if channel == "sms" else {"email__iexact": member.email}
    if not next(iter(contact.values())):
        return False
    return Member.objects.filter(practice_id=member.practice_id, **contact).exclude(pk=member.pk).exists()


@transaction.atomic
def withdraw_notice(*, notice_id: int, why: str, now: datetime) -> MemberNotice:
    """The notice no longer applies (`why`): every channel still waiting is skipped, with one line on
    the timeline. Withdrawn when none went (planned again should it apply again before the renewal);
    a channel that already went keeps the notice sent. Changes nothing when no channel waits."""
    notice = (MemberNotice.objects.select_for_update(of=("self",)).select_related("member__practice", "membership")
              .get(pk=notice_id))
    waiting = [channel for channel in CHANNELS if channel_status(notice, channel) == ChannelStatus.QUEUED]
    if not waiting:
        return notice
    for channel in waiting:
        setattr(notice, "sms_status" if channel == "sms" else "email_status", ChannelStatus.SKIPPED)
    went = {ChannelStatus.SENT, ChannelStatus.UNCERTAIN} & {notice.email_status, notice.sms_status}
    notice.status = _notice_status(notice) if went else NoticeStatus.WITHDRAWN
    notice.note = "; ".join(part for part in (notice.note, f"withdrawn: {why}") if part)[-200:]
    notice.save(update_fields=["email_status", "sms_status", "status", "note"])
    what, when = timeline_label(notice.kind), day(notice.boundary_date)
    summary = (f"{what} withdrawn ({when}): {why}" if not went else
               f"{what} not sent by {' or '.join('SMS' if c == 'sms' else 'email' for c in waiting)} ({when}): {why}")
    record_event(membership=notice.membership, member=notice.member, kind=EventKind.NOTE, summary=summary,
                 payload={"notice_id": notice.pk, "channels": waiting, "outcome": "withdrawn"}, actor=SYSTEM, now=now)
    return notice


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
