"""The rows of the member search page, read in the members' own statement."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FilteredRelation, Q, QuerySet

from .models import Member, MembershipStatus


@dataclass(frozen=True)
class OpenMembership:
    """What a search row shows of a member's open membership: its tier's name and its status."""

    pk: int
    status: str
    tier_name: str

    def get_status_display(self) -> str:
        return MembershipStatus(self.status).label


def with_open_membership(members: QuerySet[Member]):
    """`members` (a search's, sliced or not) each with `open_membership` (an `OpenMembership`, None
    without one) and the names of their practice and home location (`practice_name`,
    `home_location_name`), read in the members' own statement (LEFT JOINs: a member has one open
    membership at most), not in one more per page, and without a model object per joined row."""
    open_one = FilteredRelation("memberships", condition=~Q(memberships__status=MembershipStatus.CANCELLED))
    annotated = members.annotate(open_ms=open_one, open_ms_id=F("open_ms__id"),
                                 open_ms_status=F("open_ms__status"), open_ms_tier_name=F("open_ms__tier__name"),
                                 practice_name=F("practice__name"), home_location_name=F("home_location__name"))
    for member in annotated:
        member.open_membership = None
        if member.open_ms_id is not None:
            member.open_membership = OpenMembership(pk=member.open_ms_id, status=member.open_ms_status,
                                                    tier_name=member.open_ms_tier_name)
        yield member
