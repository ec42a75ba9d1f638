"""What every staff page shares: the permission gate, the practice scope, the audit log, form tokens."""

from __future__ import annotations

import functools
import uuid

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Subquery
from django.utils import timezone

from memberships.client_ip import client_ip  # noqa: F401  (the one reading of the client's address)
from memberships.models import AuditLog, Practice, StaffProfile
from memberships.selectors import practice_scope


def staff_page(permission: str):
    """Log-in required (else to the login page) and `memberships.<permission>` required (else 403),
    checked on the server for every method. (The Content-Security-Policy of every response is
    django-csp's, settings.CONTENT_SECURITY_POLICY.)"""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(f"memberships.{permission}"):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.staff_permission = permission
        return wrapped

    return decorator


def practice_for(user) -> Practice:
    """The practice new records are created in."""
    scope = practice_scope(user)
    practice = Practice.objects.filter(pk=scope).first() if scope is not None else Practice.objects.order_by("id").first()
    if practice is None:
        raise PermissionDenied
    return practice


def audit(request, *, action: str, obj=None, member=None, detail: dict | None = None) -> AuditLog:
    """One append-only row per chart read and per change: who, what, when, where (ids only)."""
    location = _location_of(request.user)
    row = AuditLog.objects.create(
        user=request.user if request.user.is_authenticated else None,
        location_id=location,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        member=member,
        detail=detail or {},
        ip_address=client_ip(request),
        created_at=timezone.now(),
    )
    if isinstance(location, Subquery):
        row.__dict__.pop("location_id")      # deferred: read back from the row when asked
    return row


def _location_of(user):
    """Where the staff user works now (their profile's location): the value when this request has
    read the profile already, else a subquery the audit row's INSERT evaluates (no query of its own)."""
    if not user.is_authenticated:
        return None
    if StaffProfile._meta.get_field("user").remote_field.is_cached(user):
        return getattr(getattr(user, "staff_profile", None), "location_id", None)
    return Subquery(StaffProfile.objects.filter(user_id=user.pk).values("location_id")[:1])


def audit_view(request, *, action: str, members, obj=None, detail: dict | None = None) -> list[AuditLog]:
    """A page that shows member data: one audit row per member shown, in one INSERT
    (`services.common.write_view_audit`), naming the staff member and the request's address."""
    from memberships.services.common import Actor, write_view_audit

    return write_view_audit(actor=Actor.staff(request.user, ip_address=client_ip(request)), action=action,
                            members=members, obj=obj, detail=detail, now=timezone.now())


def new_form_token() -> str:
    return uuid.uuid4().hex


def valid_token(token: str | None) -> str | None:
    """A form token is 32 hex characters; anything else is refused (it becomes an idempotency key)."""
    try:
        return uuid.UUID(hex=token or "").hex
    except ValueError:
        return None


def money(cents: int | None) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"
