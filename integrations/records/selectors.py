"""Reads for the record side: what the chart should show for a member, and the exceptions staff
resolve. They never write."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from integrations.models import RecordException, RecordExceptionStatus
from memberships import selectors as ledger
from memberships.selectors import staff_scope
from memberships.models import ChartFlag as ChartFlagRow
from memberships.models import ChartFlagStatus, Event, EventKind, Member, MembershipStatus, TierBenefit

from .base import ChartFlag, EntitlementLine, EntitlementSummary, MembershipState, MemberState


# Membership statuses that raise the chart flag by themselves, and the text the front desk sees.
# Nothing clinical and no amounts: the chart is read by the whole front desk.
STATUS_FLAGS = {
    MembershipStatus.PAST_DUE: ("card_declined",
                                "Membership card declined: ask for an updated card before redeeming."),
    MembershipStatus.LAPSED: ("card_declined",
                              "Membership lapsed after a declined card: no member benefits until renewed."),
    MembershipStatus.PAUSED: ("paused", "Membership paused: member benefits are on hold."),
    MembershipStatus.CANCELLED: ("cancelled", "Membership cancelled: balance frozen."),
}


def _flag_for(member: Member, membership) -> ChartFlag | None:
    """The flag the chart should show now: the newest open chart flag (raised by dunning or staff
    through `memberships.services.set_chart_flag`), else the one the membership status implies."""
    open_flag = (ChartFlagRow.objects.filter(member=member, status=ChartFlagStatus.OPEN)
                 .order_by("-opened_at", "-id").first())
    if open_flag is not None:
        raised = (Event.objects.filter(member=member, kind=EventKind.FLAGGED, payload__flag_id=open_flag.pk)
                  .order_by("-id").first())
        reason = str((raised.payload.get("reason") if raised else "") or open_flag.source or "other")[:40]
        if reason == "dunning":
            reason = "card_declined"
        return ChartFlag(reason=reason, text=open_flag.text, since=open_flag.opened_at)
    if membership is not None and membership.status in STATUS_FLAGS:
        reason, text = STATUS_FLAGS[membership.status]
        if membership.status == MembershipStatus.PAUSED and membership.paused_until:
            text = f"Membership paused until {membership.paused_until:%b %d, %Y}: member benefits are on hold."
        return ChartFlag(reason=reason, text=text, since=membership.updated_at)
    return None


def member_state(*, member: Member) -> MemberState:
    """The chart panel for one member as the ledger has it now (membership, balances, flag)."""
    membership = ledger.current_membership(member=member)
    if membership is None:
        return MemberState(membership=None, summary=None, flag=_flag_for(member, None))
    tier = membership.tier
    state = MembershipState(
        membership_id=membership.pk, tier_code=tier.code, tier_name=tier.name, status=membership.status,
        status_display=membership.get_status_display(), started_at=membership.started_at,
        current_period_start=membership.current_period_start, current_period_end=membership.current_period_end,
        paused_until=membership.paused_until.isoformat() if membership.paused_until else None,
        cancelled_at=membership.cancelled_at,
    )
    rules = {b.service_id: b.rollover for b in TierBenefit.objects.filter(tier_id=membership.tier_id)}
    codes = dict(member.practice.services.values_list("id", "code"))
    lines = tuple(
        EntitlementLine(
            service_code=codes.get(line.service_id, str(line.service_id)), service_name=line.service_name,
            kind=line.service_kind, balance=line.balance, reserved=line.reserved, available=line.available,
            per_cycle=line.per_cycle, rollover=rules.get(line.service_id, ""),
            rollover_in_words=line.rollover_in_words, frozen=line.frozen,
        )
        for line in ledger.balance_lines(membership=membership)
    )
    summary = EntitlementSummary(membership_id=membership.pk, currency=tier.currency,
                                 last_refill_at=membership.last_refill_at, cycle_number=membership.cycle_number,
                                 lines=lines)
    return MemberState(membership=state, summary=summary, flag=_flag_for(member, membership))


def open_record_exceptions(*, practice_id: int | None, member_id: int | None = None,
                           limit: int = 100) -> QuerySet[RecordException]:
    """What staff must resolve: treatments and bookings the ledger could not act on by itself,
    and, before the redemptions stage, reported treatments shown for review. Newest first, with
    member, service and practice (one query)."""
    rows = RecordException.objects.filter(status=RecordExceptionStatus.OPEN)
    if practice_id is not None:
        rows = rows.filter(practice_id=practice_id)
    if member_id is not None:
        rows = rows.filter(member_id=member_id)
    return rows.select_related("member__home_location", "service", "practice").order_by("-created_at", "-id")[:limit]


def open_record_exception_count(*, user) -> int:
    """Open exceptions of the practice `user` works for (every practice for a superuser): the
    count in the staff navigation. One query (the practice scope is a join)."""
    return RecordException.objects.filter(staff_scope(user), status=RecordExceptionStatus.OPEN).count()


def _open_count(rows: QuerySet, group: str):
    """`COUNT(*)` of `rows` as a subquery expression (0 when there are none)."""
    counted = rows.filter(status=RecordExceptionStatus.OPEN).order_by().values(group).annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n")[:1]), 0)


def member_open_count(member_path: str):
    """Chart count: the member's open record exceptions (see `memberships.selectors.register_chart_count`)."""
    return _open_count(RecordException.objects.filter(member_id=OuterRef(f"{member_path}id")), "member_id")


def practice_open_count(member_path: str):
    """Chart count: the open record exceptions of the member's practice (the navigation's count)."""
    return _open_count(RecordException.objects.filter(practice_id=OuterRef(f"{member_path}practice_id")),
                       "practice_id")


def record_exceptions_of(*, member: Member, limit: int = 20) -> QuerySet[RecordException]:
    return RecordException.objects.filter(member=member).select_related("service").order_by("-created_at")[:limit]
