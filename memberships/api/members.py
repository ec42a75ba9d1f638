"""Reading members and memberships: search/list, a member, a membership with its balances, its
timeline and its holds. Every answer that shows member data leaves audit rows (one per member shown).
The search, a member and a membership reach the other practices of the user's group too (as the visit
page does); a membership's timeline and holds stay with its own practice."""

from __future__ import annotations

from django.db.models import Case, F, IntegerField, OuterRef, Subquery, Value, When
from drf_spectacular.utils import extend_schema

from memberships import selectors
from memberships.models import Event, Member, Membership, MembershipStatus, Reservation

from .base import LedgerApiView, LedgerListView, NewestFirstPagination
from .errors import error_responses
from .serializers import (
    EventOut,
    HoldFilterIn,
    HoldOut,
    MemberDetailOut,
    MemberFilterIn,
    MemberOut,
    MembershipOut,
    TimelineFilterIn,
)
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response


def _current(field: str) -> Subquery:
    """A column of the member's current membership: the open one, else the latest cancelled."""
    memberships = (
        Membership.objects.filter(member_id=OuterRef("pk"))
        .annotate(closed=Case(When(status=MembershipStatus.CANCELLED, then=Value(1)), default=Value(0),
                              output_field=IntegerField()))
        .order_by("closed", F("cancelled_at").desc(nulls_last=True), "-id")
    )
    return Subquery(memberships.values(field)[:1])


class MemberListApi(LedgerListView):
    """Members of the user's practice, by id; `q` searches like the staff pages' search box, in the
    user's practice and the other practices of its group (a member of the group may be seen and redeem
    at any of its locations: `practice_id` says whose member each one is)."""

    serializer_class = MemberOut
    filters = MemberFilterIn

    def get_queryset(self):
        wanted = self.filter_values()
        scope = self.practice_id()
        if wanted.get("q"):
            members = selectors.search_members(practice_ids=self.group_practice_ids(), query=wanted["q"], limit=None)
        else:
            members = Member.objects.all() if scope is None else Member.objects.filter(practice_id=scope)
        members = members.annotate(membership_id=_current("id"), membership_status=_current("status"),
                                   membership_tier_id=_current("tier_id"))
        if wanted.get("status"):
            members = members.filter(membership_status=wanted["status"])
        if wanted.get("tier_id"):
            members = members.filter(membership_tier_id=wanted["tier_id"])
        return members

    @extend_schema(operation_id="members_list", parameters=[MemberFilterIn], responses={
        200: MemberOut(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        response = self.list(request, *args, **kwargs)
        self.audit_members(action="api_list_members", members=self.paginator.page)
        return response


class MemberDetailApi(LedgerApiView):
    """A member of the user's practice or of another practice of its group, with the current
    membership, its balances and whether its tier may be redeemed at the user's desk."""

    @extend_schema(operation_id="members_retrieve", responses={200: MemberDetailOut, **error_responses(404)})
    def get(self, request, pk: int):
        member = get_object_or_404(self.group_scoped(Member.objects.all(), "practice_id"), pk=pk)
        self.audit(action="api_view_member", obj=member, member=member)
        return Response(MemberDetailOut(member, context={"actor": self.actor()}).data)


def membership_for(view: LedgerApiView, pk: int) -> Membership:
    """The membership `pk` of the user's practice, else 404."""
    memberships = view.scoped(Membership.objects.select_related("tier", "member__practice"), "member__practice_id")
    return get_object_or_404(memberships, pk=pk)


def group_membership_for(view: LedgerApiView, pk: int) -> Membership:
    """The membership `pk` of the user's practice or of another practice of its group, else 404 (what the
    visit page reaches: the membership, its balances, redeeming)."""
    memberships = Membership.objects.select_related("tier", "member__practice", "member__home_location")
    return get_object_or_404(view.group_scoped(memberships, "member__practice_id"), pk=pk)


class MembershipDetailApi(LedgerApiView):
    """A membership of the user's practice or of another practice of its group: status, tier, period,
    balances (balance, reserved, available per service), `version`, and whether its tier may be
    redeemed at the user's desk (`redeemable_here`). Its timeline and holds stay with its own practice."""

    @extend_schema(operation_id="memberships_retrieve", responses={200: MembershipOut, **error_responses(404)})
    def get(self, request, pk: int):
        membership = group_membership_for(self, pk)
        self.audit(action="api_view_membership", obj=membership, member=membership.member)
        return Response(MembershipOut(membership, context={"actor": self.actor()}).data)


class TimelineApi(LedgerListView):
    """The membership's timeline, newest first."""

    serializer_class = EventOut
    filters = TimelineFilterIn
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        self.membership = membership_for(self, self.kwargs["pk"])
        events = Event.objects.filter(membership_id=self.membership.pk)
        kind = self.filter_values().get("kind")
        return events.filter(kind=kind) if kind else events

    @extend_schema(operation_id="memberships_timeline", parameters=[TimelineFilterIn],
                   responses={200: EventOut(many=True), **error_responses(404)})
    def get(self, request, *args, **kwargs):
        response = self.list(request, *args, **kwargs)
        self.audit(action="api_view_timeline", obj=self.membership, member=self.membership.member)
        return response


class HoldListApi(LedgerListView):
    """The membership's holds (held, committed, released), newest first."""

    serializer_class = HoldOut
    filters = HoldFilterIn
    pagination_class = NewestFirstPagination

    def get_queryset(self):
        self.membership = membership_for(self, self.kwargs["pk"])
        holds = Reservation.objects.filter(membership_id=self.membership.pk)
        status = self.filter_values().get("status")
        return holds.filter(status=status) if status else holds

    @extend_schema(operation_id="memberships_holds_list", parameters=[HoldFilterIn],
                   responses={200: HoldOut(many=True), **error_responses(404)})
    def get(self, request, *args, **kwargs):
        response = self.list(request, *args, **kwargs)
        self.audit(action="api_list_holds", obj=self.membership, member=self.membership.member)
        return response
