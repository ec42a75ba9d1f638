"""Spending through the API, each through the ledger's one door for it: a redemption
(`redeem_at_desk`), its reversal by a manager (`reverse_entry`), and the hold for a booked
appointment (`reserve_entitlement` → `commit_reservation` | `release_reservation`). Every write
takes an Idempotency-Key or is idempotent by nature; a replay answers what the first call did."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from memberships import services
from memberships.errors import IdempotencyKeyReused, IllegalTransition
from memberships.models import EntryKind, LedgerEntry, Membership, Reservation, ReservationStatus, Service

from .base import IDEMPOTENCY_KEY, MAX_ID, CanRedeem, LedgerApiView, idempotency_key
from .errors import error_responses
from .members import HoldListApi, group_membership_for, membership_for
from .serializers import EntryOut, HoldIn, HoldOut, RedemptionIn, RedemptionOut, ReversalIn

REPLAYED = "Idempotent-Replayed"
REPLAYED_HEADER = OpenApiParameter(
    REPLAYED, {"type": "string", "enum": ["true", "false"]}, OpenApiParameter.HEADER, response=[201],
    description="`true` when this answer replays an earlier request with the same Idempotency-Key (nothing spent).")


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _service_of(membership: Membership, service_id: int) -> Service:
    service = Service.objects.filter(pk=service_id, practice_id=membership.member.practice_id).first()
    if service is None:
        raise ValidationError({"service_id": ["No such service in this practice."]})
    return service


class RedemptionCreateApi(LedgerApiView):
    """Spend units (or cents) now."""

    permission_classes = [CanRedeem]

    @extend_schema(
        operation_id="memberships_redemptions_create", request=RedemptionIn,
        parameters=[IDEMPOTENCY_KEY, REPLAYED_HEADER],
        responses={201: RedemptionOut, **error_responses(404, 409, 415)},
        description="Spend units (or cents) now, for a member of the user's practice or of another "
                    "practice of its group, at the user's location (recorded on the entry). A tier "
                    "redeemable only at the member's home location is refused elsewhere (409 "
                    "`not_redeemable_here`, naming where) and nothing is spent. The same "
                    "Idempotency-Key again answers the first redemption (201, header "
                    "`Idempotent-Replayed: true`) and spends nothing.")
    def post(self, request, pk: int):
        membership = group_membership_for(self, pk)
        key = idempotency_key(request)
        data = _valid(RedemptionIn, request)
        service = _service_of(membership, data["service_id"])
        quantity = data["quantity"]
        # Keys are the desk's own: its practice's (for its own members, the key the API has always used).
        desk = self.practice_id() or membership.member.practice_id
        result = services.redeem_at_desk(
            membership=membership, service=service, quantity=quantity, actor=self.actor(),
            idempotency_key=f"api:{desk}:{key}", chart_version=data.get("chart_version", MAX_ID), now=timezone.now())
        entry = result.entry
        if (entry.membership_id, entry.service_id, -entry.quantity) != (membership.pk, service.pk, quantity):
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different redemption.")
        if result.replayed:
            self.audit(action="api_redeem_replayed", obj=entry, member=membership.member)
        response = Response(RedemptionOut(entry).data, status=status.HTTP_201_CREATED)
        response[REPLAYED] = "true" if result.replayed else "false"
        return response


class RedemptionReverseApi(LedgerApiView):
    permission_classes = [CanRedeem]

    @extend_schema(
        operation_id="redemptions_reverse", request=ReversalIn,
        responses={201: EntryOut, 200: OpenApiResponse(EntryOut, description="Already reversed through the "
                                                       "API or the chart: that reversal, nothing changed."),
                   **error_responses(404, 409, 415)},
        description="Reverse a redemption (a mirror entry; the original stays), with the pages' rule: "
                    "staff reverse their own redemption on the day it was made, without the disputed "
                    "mark; anything else is a manager's (403 `not_allowed`). Reversing again answers "
                    "the first reversal (200).")
    def post(self, request, pk: int):
        entries = LedgerEntry.objects.select_related("membership__member__practice", "membership__tier")
        entry = get_object_or_404(self.scoped(entries.filter(kind=EntryKind.REDEEM), "membership__member__practice_id"),
                                  pk=pk)
        data = _valid(ReversalIn, request)
        outcome = services.reverse_entry.outcome(
            entry=entry, actor=self.actor(), reason=data["reason"], idempotency_key=f"staff:reverse:{entry.pk}",
            now=timezone.now(), dispute=data["dispute"], audit_action="api_reverse")
        if outcome.replayed:
            self.audit(action="api_reverse_replayed", obj=outcome.result, member=entry.membership.member)
        return Response(EntryOut(outcome.result).data,
                        status=status.HTTP_200_OK if outcome.replayed else status.HTTP_201_CREATED)


class HoldsApi(HoldListApi):
    """GET: the membership's holds. POST: hold units for a booked appointment."""

    permission_classes = [CanRedeem]

    @extend_schema(
        operation_id="memberships_holds_create", request=HoldIn, parameters=[IDEMPOTENCY_KEY],
        responses={201: HoldOut, **error_responses(404, 409, 415)},
        description="Hold units for a booked appointment: they stop being available to anyone else "
                    "until committed (the treatment happened) or released (cancelled, no-show).")
    def post(self, request, pk: int):
        membership = membership_for(self, pk)
        key = idempotency_key(request)
        data = _valid(HoldIn, request)
        service = _service_of(membership, data["service_id"])
        with transaction.atomic():
            hold = services.reserve_entitlement(
                membership=membership, service=service, quantity=data["quantity"], actor=self.actor(),
                idempotency_key=f"api:hold:{membership.member.practice_id}:{key}", now=timezone.now(),
                external_ref=data["external_ref"], audit_action="api_hold")
            if ((hold.membership_id, hold.service_id, hold.quantity, hold.external_ref)
                    != (membership.pk, service.pk, data["quantity"], data["external_ref"])):
                raise IdempotencyKeyReused("This Idempotency-Key was already used for a different hold.")
        return Response(HoldOut(hold).data, status=status.HTTP_201_CREATED)


def hold_for(view: LedgerApiView, pk: int) -> Reservation:
    holds = Reservation.objects.select_related("membership__member__practice", "membership__tier", "service")
    return get_object_or_404(view.scoped(holds, "membership__member__practice_id"), pk=pk)


class HoldDetailApi(LedgerApiView):
    """A hold: the units it keeps for a booked appointment, and what became of it."""

    @extend_schema(operation_id="holds_retrieve", responses={200: HoldOut, **error_responses(404)})
    def get(self, request, pk: int):
        hold = hold_for(self, pk)
        self.audit(action="api_view_hold", obj=hold, member=hold.membership.member)
        return Response(HoldOut(hold).data)


class HoldCommitApi(LedgerApiView):
    permission_classes = [CanRedeem]

    @extend_schema(operation_id="holds_commit", request=None, responses={200: HoldOut, **error_responses(404, 409)},
                   description="The treatment happened: spend the held units. Committing again changes "
                               "nothing; a released hold answers 409 `illegal_transition`.")
    def post(self, request, pk: int):
        hold = hold_for(self, pk)
        with transaction.atomic():
            services.commit_reservation(reservation=hold, actor=self.actor(), now=timezone.now(),
                                        audit_action="api_commit_hold")
        return Response(HoldOut(hold).data)


class HoldReleaseApi(LedgerApiView):
    permission_classes = [CanRedeem]

    @extend_schema(operation_id="holds_release", request=None, responses={200: HoldOut, **error_responses(404, 409)},
                   description="Cancelled or no-show: give the held units back. Releasing again changes "
                               "nothing; a committed hold answers 409 `illegal_transition`.")
    def post(self, request, pk: int):
        hold = hold_for(self, pk)
        with transaction.atomic():
            released = services.release_reservation(reservation=hold, actor=self.actor(), now=timezone.now(),
                                                    reason="Released through the API", audit_action="api_release_hold")
            if released.status == ReservationStatus.COMMITTED:
                raise IllegalTransition("This hold was already used for the treatment; reverse the redemption instead.")
        return Response(HoldOut(released).data)
