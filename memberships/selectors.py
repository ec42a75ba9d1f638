"""Reads the pages and the API share. They never write."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from .models import EntitlementBalance, Event, Member, Membership, MembershipStatus, TierBenefit


def search_members(*, practice_id: int | None, query: str, limit: int = 25) -> QuerySet[Member]:
    """Name (prefix of first, last or "first last"), phone (digits), email or member number.
    Every branch is an indexed prefix or equality lookup, so it stays fast on 100,000 members."""
    q = (query or "").strip()
    members = Member.objects.all()
    if practice_id is not None:
        members = members.filter(practice_id=practice_id)
    if not q:
        return members.none()
    digits = "".join(ch for ch in q if ch.isdigit())
    condition = Q(member_number__iexact=q) | Q(search_name__startswith=q.lower())
    condition |= Q(last_name__istartswith=q) | Q(first_name__istartswith=q)
    if "@" in q:
        condition |= Q(email__iexact=q)
    if len(digits) >= 7:
        condition |= Q(phone__endswith=digits[-10:])
    return members.filter(condition).order_by("last_name", "first_name", "id")[:limit]


def current_membership(*, member: Member) -> Membership | None:
    """The open membership, else the latest cancelled one (its frozen balance still shows)."""
    memberships = Membership.objects.filter(member=member).select_related("tier", "pending_tier")
    open_one = memberships.exclude(status=MembershipStatus.CANCELLED).first()
    return open_one or memberships.order_by("-cancelled_at", "-id").first()


@dataclass(frozen=True)
class BalanceLine:
    service_id: int
    service_name: str
    service_kind: str
    balance: int
    reserved: int
    available: int
    per_cycle: int | None
    rollover_in_words: str
    frozen: bool
    balance_display: str
    available_display: str


def balance_lines(*, membership: Membership) -> list[BalanceLine]:
    benefits = {b.service_id: b for b in TierBenefit.objects.filter(tier_id=membership.tier_id).select_related("service")}
    lines = []
    for bal in EntitlementBalance.objects.filter(membership=membership).select_related("service").order_by("service__name"):
        benefit = benefits.get(bal.service_id)
        if benefit is None and bal.balance == 0:
            continue
        lines.append(BalanceLine(
            service_id=bal.service_id,
            service_name=bal.service.name,
            service_kind=bal.service.kind,
            balance=bal.balance,
            reserved=bal.reserved,
            available=bal.available,
            per_cycle=benefit.quantity_per_cycle if benefit else None,
            rollover_in_words=benefit.rollover_in_words if benefit else "not in the current tier",
            frozen=bal.frozen_at is not None,
            balance_display=bal.service.format_quantity(bal.balance),
            available_display=bal.service.format_quantity(bal.available),
        ))
    return lines


def timeline(*, member: Member, limit: int = 50) -> QuerySet[Event]:
    return Event.objects.filter(member=member).order_by("-created_at", "-id")[:limit]
