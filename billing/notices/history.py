"""Notices already sent, written after the fact for the demo practice's history (`seed_demo`): the
upcoming-charge and expiring-credit notices a membership would have had `days` before a boundary,
as sent by email (and SMS with consent), with their timeline events. Called just before the renewal
at `boundary` is recorded, so the dry run sees the boundary's state; what the member used in the
last `days` before it (of credit that does not carry over) is added back, as it was still there
when the notice went. Runs once per membership and boundary (the unique constraint)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Sum

from memberships.models import EntryKind, EventKind, LedgerEntry, Membership, RolloverRule, TierBenefit
from memberships.services.common import record_event
from memberships.services.location_prices import membership_price
from memberships.services.refill import preview_next_boundary

from ..dunning.quiet import member_zone
from ..models import ChannelStatus, MemberNotice, NoticeKind, NoticeStatus
from .planning import SYSTEM
from .wording import day, timeline_label


def _named(membership: Membership, *, boundary: datetime, sent_at: datetime) -> dict[str, int]:
    tier = membership.pending_tier or membership.tier
    named = {sid: q for sid, q in preview_next_boundary(membership=membership, tier=tier).items() if q > 0}
    lapsing = set(TierBenefit.objects.filter(tier_id=membership.tier_id, rollover=RolloverRule.NONE)
                  .values_list("service_id", flat=True))
    used = (LedgerEntry.objects.filter(membership=membership, kind=EntryKind.REDEEM, service_id__in=lapsing,
                                       created_at__gte=sent_at, created_at__lt=boundary)
            .values("service_id").annotate(q=Sum("quantity")).order_by())
    for row in used:
        named[row["service_id"]] = named.get(row["service_id"], 0) - row["q"]
    return {str(sid): q for sid, q in named.items() if q > 0}


def record_notice_history(*, membership: Membership, boundary: datetime, days: int = 7) -> list[MemberNotice]:
    member = membership.member
    sent_at = (boundary - timedelta(days=days)).astimezone(member_zone(member)).replace(hour=10, minute=0)
    boundary_date = boundary.astimezone(member_zone(member)).date()
    tier = membership.pending_tier or membership.tier
    made = []
    for kind in (NoticeKind.UPCOMING_CHARGE, NoticeKind.EXPIRING_CREDIT):
        named = _named(membership, boundary=boundary, sent_at=sent_at) if kind == NoticeKind.EXPIRING_CREDIT else {}
        if kind == NoticeKind.EXPIRING_CREDIT and not named:
            continue
        if MemberNotice.objects.filter(membership=membership, kind=kind, boundary_date=boundary_date).exists():
            continue
        sms = ChannelStatus.SENT if member.can_receive_sms else ChannelStatus.SKIPPED
        amount = membership_price(membership, tier=tier).cents if kind == NoticeKind.UPCOMING_CHARGE else 0
        notice = MemberNotice.objects.create(
            practice_id=member.practice_id, member=member, membership=membership, kind=kind,
            boundary_date=boundary_date, boundary_at=boundary, currency=tier.currency, nudged=named,
            amount_cents=amount, status=NoticeStatus.SENT,
            email_status=ChannelStatus.SENT, sms_status=sms, note="" if member.can_receive_sms else "SMS: no consent",
            created_at=sent_at, sent_at=sent_at)
        for channel in ("email", "sms") if sms == ChannelStatus.SENT else ("email",):
            record_event(membership=membership, member=member, kind=EventKind.MESSAGE_SENT, actor=SYSTEM, now=sent_at,
                         summary=f"{timeline_label(kind)} sent by {'SMS' if channel == 'sms' else 'email'} "
                                 f"({day(boundary_date)})",
                         payload={"notice_id": notice.pk, "channel": channel, "sent": True})
        made.append(notice)
    return made
