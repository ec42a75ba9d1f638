"""The staff page for the record side: what the record reported that the ledger did not act on by
itself (record exceptions), and the treatments held for review before the `redemptions` stage.
Front desk and managers (`manage_membership`) see their practice's open ones and close them:
resolve with a note, or — for a held treatment — apply it now (spent through the ledger, once per
appointment) or dismiss it. Thin: the selector reads, `exceptions` services write, each change is
audited once, by the service (a double submit changes and audits nothing the second time)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from integrations.models import RecordException, RecordExceptionKind
from memberships.errors import LedgerError
from memberships.views.common import audit_view, client_ip, practice_scope, staff_page

from . import exceptions
from .selectors import open_record_exceptions

PERMISSION = "manage_membership"
EVENT_WORDS = {"treatment.completed": "Treatment completed", "appointment.booked": "Appointment booked",
               "appointment.cancelled": "Appointment cancelled"}


def _member_filter(request) -> int | None:
    value = request.GET.get("member") or request.POST.get("member") or ""
    return int(value) if value.isdigit() else None


def _back(member_id: int | None):
    url = reverse("records_staff:list")
    return redirect(f"{url}?member={member_id}" if member_id else url)


@staff_page(PERMISSION)
def record_exceptions(request):
    scope = practice_scope(request.user)
    member_id = _member_filter(request)
    rows = list(open_record_exceptions(practice_id=scope, member_id=member_id))
    audit_view(request, action="record_exceptions", members=[row.member_id for row in rows if row.member_id])
    is_manager = request.user.has_perm(exceptions.MANAGER_PERMISSION)
    items = [{
        "row": row,
        "reported": EVENT_WORDS.get(row.event_type, row.event_type),
        "service": row.service.name if row.service else (row.service_ref or "—"),
        "quantity": row.service.format_quantity(row.quantity) if row.service else str(row.quantity),
        "held": row.kind == RecordExceptionKind.REVIEW,
        "needs_manager": exceptions.needs_manager(row.practice, member=row.member),
    } for row in rows]
    return render(request, "integrations/record_exceptions.html", {
        "items": items, "member_id": member_id, "is_manager": is_manager,
        "filtered_member": rows[0].member if member_id and rows else None,
    })


def _exception(request, exception_id: int) -> RecordException:
    scope = practice_scope(request.user)
    rows = RecordException.objects.select_related("member", "service", "practice")
    return get_object_or_404(rows if scope is None else rows.filter(practice_id=scope), pk=exception_id)


def _act(request, exception_id: int, *, run, done: str):
    """Run one service on one exception (it writes its audit row when it changed something) and go back."""
    row = _exception(request, exception_id)
    now = timezone.now()
    try:
        result = run(row, now)
        changed = result.resolved_at == now
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        if changed:
            messages.success(request, done)
        else:
            messages.info(request, f"That exception was already closed ({result.get_status_display().lower()}); "
                                   "nothing was done twice.")
    return _back(_member_filter(request))


@require_POST
@staff_page(PERMISSION)
def resolve(request, exception_id: int):
    note = request.POST.get("note", "")
    return _act(request, exception_id, done="Resolved.",
                run=lambda row, now: exceptions.resolve_record_exception(
                    record_exception=row, user=request.user, note=note, now=now, ip_address=client_ip(request)))


@require_POST
@staff_page(PERMISSION)
def apply(request, exception_id: int):
    if not request.user.has_perm("memberships.redeem_entitlement"):
        raise PermissionDenied
    confirmed = request.POST.get("confirm") == "1"
    return _act(request, exception_id, done="Applied: the treatment was redeemed from the member's balance.",
                run=lambda row, now: exceptions.apply_record_exception(
                    record_exception=row, user=request.user, now=now, manager_confirmed=confirmed,
                    note=request.POST.get("note", ""), ip_address=client_ip(request)))


@require_POST
@staff_page(PERMISSION)
def dismiss(request, exception_id: int):
    return _act(request, exception_id, done="Dismissed: nothing was spent.",
                run=lambda row, now: exceptions.dismiss_record_exception(
                    record_exception=row, user=request.user, now=now, note=request.POST.get("note", ""),
                    ip_address=client_ip(request)))
