"""REST API (staff only): member search, membership detail with balances, redemptions."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from . import selectors, services
from .errors import IdempotencyKeyReused, LedgerError
from .models import LedgerEntry, Member, Membership, Service
from .services.common import MAX_QUANTITY
from .views.common import audit

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """Every error is JSON with a stable `code`: domain errors keep theirs, DRF's get one."""
    if isinstance(exc, LedgerError):
        return Response({"code": exc.code, "detail": exc.message}, status=exc.http_status)
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        response.data = {"code": "invalid", "detail": "The request has invalid fields.", "fields": response.data}
    elif isinstance(exc, (APIException, Http404)):
        code = getattr(exc, "default_code", "not_found") if isinstance(exc, APIException) else "not_found"
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"code": code, "detail": str(detail)}
    return response


class IsStaffRole(permissions.BasePermission):
    """Staff only: a user of one of the staff roles (or a superuser)."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("memberships.view_chart"))


class CanRedeem(IsStaffRole):
    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return super().has_permission(request, view) and request.user.has_perm("memberships.redeem_entitlement")


class MemberOut(serializers.ModelSerializer):
    membership_id = serializers.SerializerMethodField()

    class Meta:
        model = Member
        fields = ["id", "member_number", "first_name", "last_name", "email", "phone", "membership_id"]

    def get_membership_id(self, obj) -> int | None:
        membership = selectors.current_membership(member=obj)
        return membership.pk if membership else None


class MemberSearchApi(APIView):
    permission_classes = [IsStaffRole]

    @extend_schema(parameters=[OpenApiParameter("q", str, description="Name, phone, email or member number")],
                   responses=MemberOut(many=True))
    def get(self, request):
        query = request.query_params.get("q", "")
        members = selectors.search_members(practice_id=selectors.practice_scope(request.user), query=query)
        results = MemberOut(members, many=True).data
        audit(request, action="api_search_members", detail={"results": len(results)})
        return Response({"results": results})


class BalanceOut(serializers.Serializer):
    service_id = serializers.IntegerField()
    service_name = serializers.CharField()
    service_kind = serializers.CharField()
    balance = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()
    per_cycle = serializers.IntegerField(allow_null=True)
    rollover_in_words = serializers.CharField()
    frozen = serializers.BooleanField()


class MembershipOut(serializers.ModelSerializer):
    tier = serializers.CharField(source="tier.name")
    tier_id = serializers.IntegerField()
    price_cents = serializers.IntegerField(source="tier.price_cents")
    currency = serializers.CharField(source="tier.currency")
    member = MemberOut()
    balances = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["id", "status", "tier", "tier_id", "price_cents", "currency", "started_at",
                  "current_period_start", "current_period_end", "last_refill_at", "paused_until",
                  "cancelled_at", "member", "balances"]

    def get_balances(self, obj) -> list[dict]:
        return BalanceOut([line.__dict__ for line in selectors.balance_lines(membership=obj)], many=True).data


def _membership_for(request, pk: int) -> Membership:
    scope = selectors.practice_scope(request.user)
    memberships = Membership.objects.select_related("tier", "member__practice")
    if scope is not None:
        memberships = memberships.filter(member__practice_id=scope)
    return get_object_or_404(memberships, pk=pk)


class MembershipDetailApi(APIView):
    permission_classes = [IsStaffRole]

    @extend_schema(responses=MembershipOut)
    def get(self, request, pk: int):
        membership = _membership_for(request, pk)
        audit(request, action="api_view_membership", obj=membership, member=membership.member)
        return Response(MembershipOut(membership).data)


class RedemptionIn(serializers.Serializer):
    service_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY, default=1)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RedemptionOut(serializers.ModelSerializer):
    service_id = serializers.IntegerField()
    membership_id = serializers.IntegerField()
    quantity = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        fields = ["id", "membership_id", "service_id", "quantity", "balance_after", "idempotency_key", "created_at"]

    def get_quantity(self, obj) -> int:
        return -obj.quantity


class RedemptionCreateApi(APIView):
    permission_classes = [CanRedeem]

    @extend_schema(
        request=RedemptionIn, responses={201: RedemptionOut},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
                                     description="A unique key per redemption; a replay returns the first result.")],
    )
    def post(self, request, pk: int):
        membership = _membership_for(request, pk)
        key = (request.headers.get("Idempotency-Key") or "").strip()
        if not key or len(key) > 150:
            raise ValidationError({"Idempotency-Key": ["Send a unique Idempotency-Key header (1–150 characters)."]})
        data = RedemptionIn(data=request.data)
        data.is_valid(raise_exception=True)
        service = Service.objects.filter(pk=data.validated_data["service_id"],
                                         practice_id=membership.member.practice_id).first()
        if service is None:
            raise ValidationError({"service_id": ["Unknown service."]})
        quantity = data.validated_data["quantity"]
        entry = services.redeem_entitlement(
            membership=membership, service=service, quantity=quantity,
            actor=services.Actor.staff(request.user),
            idempotency_key=f"api:{membership.member.practice_id}:{key}", now=timezone.now(),
            reason=data.validated_data["reason"] or "Redeemed through the API",
        )
        if (entry.membership_id, entry.service_id, -entry.quantity) != (membership.pk, service.pk, quantity):
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different redemption.")
        audit(request, action="api_redeem", obj=entry, member=membership.member,
              detail={"service_id": service.pk, "quantity": quantity})
        return Response(RedemptionOut(entry).data, status=status.HTTP_201_CREATED)
