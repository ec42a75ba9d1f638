"""The staff queue "Member requests": pauses and cancellations members asked for on their own page.
Front desk and managers (`manage_membership`) see their practice's open requests, oldest first, and
the last decided ones; approving calls the same door as the staff pages (through
`services.member_requests`, once however many press it), declining records why. Every member shown
is audited (one insert per page)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from memberships.errors import LedgerError
from memberships.models import MemberRequest, MemberRequestStatus
from memberships.services.common import Actor
from memberships.services.member_requests import approve_member_request, decline_member_request

from .common import audit_view, client_ip, practice_scope, staff_page

PERMISSION = "manage_membership"
RECENT = 20


def _rows(user):
    scope = practice_scope(user)
    rows = MemberRequest.objects.select_related("member", "membership__tier", "decided_by")
    return rows if scope is None else rows.filter(practice_id=scope)


@staff_page(PERMISSION)
def member_requests(request):
    rows = _rows(request.user)
    waiting = list(rows.filter(status=MemberRequestStatus.PENDING).order_by("created_at", "id"))
    decided = list(rows.exclude(status=MemberRequestStatus.PENDING).order_by("-decided_at", "-id")[:RECENT])
    audit_view(request, action="member_requests_view", members=[row.member_id for row in waiting + decided])
    return render(request, "memberships/member_requests.html", {"waiting": waiting, "decided": decided})


@require_POST
@staff_page(PERMISSION)
def decide_member_request(request, request_id: int):
    if not _rows(request.user).filter(pk=request_id).exists():
        raise Http404("No such request")
    decision = request.POST.get("decision", "")
    if decision not in ("approve", "decline"):
        messages.error(request, "Choose approve or decline.")
        return redirect("memberships:member_requests")
    actor, now = Actor.staff(request.user, ip_address=client_ip(request)), timezone.now()
    scope = practice_scope(request.user)
    try:
        if decision == "approve":
            approve_member_request(request_id=request_id, practice_id=scope, actor=actor, now=now)
            messages.success(request, "Approved: the membership is changed.")
        else:
            decline_member_request(request_id=request_id, practice_id=scope, actor=actor, now=now,
                                   reason=request.POST.get("decline_reason", ""))
            messages.success(request, "Declined; the member sees why on their page.")
    except MemberRequest.DoesNotExist:
        raise Http404("No such request")
    except LedgerError as exc:
        messages.error(request, exc.message)
    return redirect("memberships:member_requests")
