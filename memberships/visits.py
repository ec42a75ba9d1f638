"""The visit page's reads: a member of the group seen at the front desk of another practice of it.

Staff of any practice of an organization may find a member of the group, see the chart panel (tier,
status, balances, where the tier may be redeemed) and redeem when the tier allows; everything else
about the member (lifecycle, dunning, timeline, reversals, who looked) stays with the member's own
practice. A practice without an organization sees only its own members, as before. They never write."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, IntegerField, Max, OuterRef, Q, Subquery, Value, When

from .models import ChartFlag as StoredChartFlag
from .models import ChartFlagStatus, LedgerEntry, Member, Membership, MembershipStatus, RedeemableAt
from .selectors import BalanceLine, ChartFlag, balance_lines, chart_flags, searchable_practice_ids


@dataclass
class Visit:
    member: Member
    membership: Membership | None
    balances: list[BalanceLine]
    flags: list[ChartFlag]
    version: int

    @property
    def home_name(self) -> str:
        """Where the member belongs: their home location, else their practice."""
        home = self.member.home_location
        return home.name if home is not None else self.member.practice.name

    @property
    def rule(self) -> str:
        """The tier's rule, in words."""
        if self.membership is None:
            return ""
        if self.membership.tier.redeemable_at == RedeemableAt.HOME:
            return f"Redeemable only at {self.home_name}"
        return "Redeemable at any location of the group"


def _scope(ids: list[int] | None, prefix: str) -> Q:
    return Q() if ids is None else Q(**{f"{prefix}practice_id__in": ids})


def visit_panel(*, member_id: int, user, now) -> Visit | None:
    """The visit page of one member of the user's group (their own practice included), or None.
    Queries: the group's practices, the membership (with member, practice, home location, tier,
    version and open chart flag), the balances — three."""
    ids = searchable_practice_ids(user)
    last_entry = (LedgerEntry.objects.filter(membership_id=OuterRef("pk")).order_by()
                  .values("membership_id").annotate(m=Max("id")).values("m"))
    open_flag = (StoredChartFlag.objects.filter(member_id=OuterRef("member_id"), status=ChartFlagStatus.OPEN)
                 .order_by("-opened_at", "-id").values("text")[:1])
    membership = (
        Membership.objects.filter(_scope(ids, "member__"), member_id=member_id)
        .select_related("member__practice", "member__home_location", "tier", "pending_tier")
        .annotate(chart_version=Subquery(last_entry), open_flag_text=Subquery(open_flag),
                  closed=Case(When(status=MembershipStatus.CANCELLED, then=Value(1)), default=Value(0),
                              output_field=IntegerField()))
        .order_by("closed", "-cancelled_at", "-id")
        .first()
    )
    if membership is not None:
        member = membership.member
    else:
        member = (Member.objects.select_related("practice", "home_location")
                  .filter(_scope(ids, ""), pk=member_id).first())
        if member is None:
            return None
    return Visit(
        member=member,
        membership=membership,
        balances=balance_lines(membership=membership) if membership is not None else [],
        flags=chart_flags(membership, now=now),
        version=(getattr(membership, "chart_version", None) or 0) if membership is not None else 0,
    )
