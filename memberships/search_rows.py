"""The rows of the member search page, read in the members' own statement."""

from __future__ import annotations

from django.db.models import F, FilteredRelation, Q, QuerySet

from .models import Member, Membership, MembershipStatus, Tier


def with_open_membership(members: QuerySet[Member]):
    """`members` (a search's, sliced or not) each with `open_membership`: their open membership
    (None without one) with its tier's name and id, read in the members' own statement (a LEFT
    JOIN: a member has one open membership at most), not in one more per page."""
    open_one = FilteredRelation("memberships", condition=~Q(memberships__status=MembershipStatus.CANCELLED))
    annotated = members.annotate(open_ms=open_one, open_ms_id=F("open_ms__id"),
                                 open_ms_status=F("open_ms__status"), open_ms_tier_id=F("open_ms__tier_id"),
                                 open_ms_tier_name=F("open_ms__tier__name"))
    for member in annotated:
        member.open_membership = None
        if member.open_ms_id is not None:
            member.open_membership = Membership(
                pk=member.open_ms_id, member=member, status=member.open_ms_status,
                tier=Tier(pk=member.open_ms_tier_id, name=member.open_ms_tier_name))
        yield member
