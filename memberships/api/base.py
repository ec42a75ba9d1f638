"""What every API view shares: the roles, the practice scope (and the group's, for looking up and
redeeming for a member of a sibling practice), the one bad-character check, JSON only, cursor
pagination, the Idempotency-Key header and the audit rows of what it shows."""

from __future__ import annotations

import inspect
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model
from django.utils import timezone
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import generics, permissions
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from memberships import selectors, services
from memberships.models import Member
from memberships.services.common import write_audit, write_view_audit
from memberships.client_ip import client_ip

from .errors import IdempotencyKeyInvalid, IdempotencyKeyRequired, InvalidCursor, refuse_bad_characters

MAX_ID = 2**63 - 1


class IsStaffRole(permissions.BasePermission):
    """Staff only: a user of one of the staff roles (clinician, front desk, manager) or a superuser."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("memberships.view_chart"))


class CanRedeem(IsStaffRole):
    """Reads for any staff role; spending (redeem, hold, commit, release) for the roles that may redeem."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return super().has_permission(request, view) and request.user.has_perm("memberships.redeem_entitlement")


class LedgerCursorPagination(CursorPagination):
    """Cursor pagination by id (stable while rows are added); `page_size` from 1 to 100, anything
    else a 400 naming it (not the default page, silently). A cursor this API did not give out is a
    400 (`invalid_cursor`), never a database error."""

    ordering = ("id",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (re.fullmatch(r"[0-9]{1,3}", raw) and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({self.page_size_query_param: [
                f"A whole number from 1 to {self.max_page_size} (default {self.page_size})."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise InvalidCursor()
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: str) -> None:
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            value = field.to_python(position)
        except DjangoValidationError:
            raise InvalidCursor()
        if value is None or (isinstance(value, int) and not 0 <= value <= MAX_ID):
            raise InvalidCursor()

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)


class NewestFirstPagination(LedgerCursorPagination):
    ordering = ("-id",)


class LedgerSchema(AutoSchema):
    """Operations tagged by subject (members, memberships, redemptions, holds, tiers, services) and
    described by their own view's docstring, not a base class's."""

    def get_tags(self):
        return [self.path.split("/")[3]]  # /api/v1/<subject>/...

    def get_description(self):
        return inspect.cleandoc(type(self.view).__dict__.get("__doc__") or "")


class LedgerApiView(APIView):
    """Base of every API view: staff roles, JSON bodies only, and the bad-character check on every
    query parameter and body field before the view runs."""

    permission_classes = [IsStaffRole]
    schema = LedgerSchema()
    parser_classes = [JSONParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        refuse_bad_characters(request)

    def practice_id(self) -> int | None:
        """The user's practice (None for a superuser without one: every practice)."""
        return selectors.practice_scope(self.request.user)

    def scoped(self, queryset, path: str):
        """Rows of the user's practice only (`path` leads from the row to its practice id); another
        practice's rows are simply not found (404)."""
        scope = self.practice_id()
        return queryset if scope is None else queryset.filter(**{path: scope})

    def group_practice_ids(self) -> list[int] | None:
        """The practices whose members the user may look up and redeem for, as on the visit page:
        their own and the other practices of its group (None for a superuser without one: all)."""
        return selectors.searchable_practice_ids(self.request.user)

    def group_scoped(self, queryset, path: str):
        """Rows of the user's practice or of another practice of its group (`path` leads from the row to
        its practice id); another group's, or an unrelated practice's, are simply not found (404)."""
        ids = self.group_practice_ids()
        return queryset if ids is None else queryset.filter(**{f"{path}__in": ids})

    def actor(self) -> services.Actor:
        return services.Actor.staff(self.request.user, ip_address=client_ip(self.request))

    def audit(self, *, action: str, obj: Model | None = None, member: Member | None = None,
              detail: dict | None = None) -> None:
        """The audit row of a read (a write's row is the service's): who saw what, when; ids only."""
        write_audit(actor=self.actor(), action=action, obj=obj, member=member, detail=detail, now=timezone.now())

    def audit_members(self, *, action: str, members: list[Member]) -> None:
        """One audit row per member shown by a list, in one insert."""
        write_view_audit(actor=self.actor(), action=action, members=members, now=timezone.now())


class LedgerListView(LedgerApiView, generics.ListAPIView):
    """A cursor-paginated list, filtered by the view's `filters` serializer (query parameters)."""

    pagination_class = LedgerCursorPagination
    filters = None

    def filter_values(self) -> dict:
        if self.filters is None:
            return {}
        data = self.filters(data=self.request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data


IDEMPOTENCY_KEY_MAX = 150
_VISIBLE_ASCII = re.compile(r"[!-~]+")

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX, "pattern": r"^[!-~]+$"},
    OpenApiParameter.HEADER, required=True,
    description="A unique key per request (1–150 visible ASCII characters, e.g. a UUID). Sending the "
                "same key again replays the first answer and changes nothing; the same key with a "
                "different body answers 409 `idempotency_key_reused`. Missing: 400 "
                "`idempotency_key_required`; too long or other characters: 400 `idempotency_key_invalid`.",
)


def idempotency_key(request) -> str:
    """The request's Idempotency-Key: missing → 400 `idempotency_key_required`; too long or not
    visible ASCII → 400 `idempotency_key_invalid`."""
    key = request.headers.get("Idempotency-Key")
    if key is None or not key.strip():
        raise IdempotencyKeyRequired()
    key = key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX or not _VISIBLE_ASCII.fullmatch(key):
        raise IdempotencyKeyInvalid()
    return key
