""""Who looked at this member": the audit rows naming a member, newest first, paginated — a
manager's page, linked from the chart. Reading it is itself audited."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from memberships.models import AuditLog, Member

from .common import audit_view, practice_scope, staff_page

PAGE_SIZE = 50

# The audit log's actions in words (an action not listed shows as written).
ACTION_WORDS = {
    "view_chart": "Opened the chart",
    "view_visit": "Opened the chart panel at another practice of the group",
    "search_members": "Saw in a member search",
    "view_audit_trail": "Opened who looked at this member",
    "redeem": "Redeemed",
    "reverse": "Reversed a redemption",
    "admin_reverse": "Reversed an entry in the admin",
    "adjust": "Adjusted a balance",
    "admin_adjust": "Adjusted a balance in the admin",
    "enroll": "Enrolled",
    "change_tier": "Changed the tier",
    "pause": "Paused",
    "resume": "Resumed",
    "cancel": "Cancelled",
    "card_link": "Opened the card link",
    "dunning_queue": "Saw in the dunning queue",
    "dunning_contacted": "Noted a contact (dunning)",
    "dunning_card_link_resent": "Resent the card link (dunning)",
    "record_exceptions": "Saw in the record exceptions",
    "record_exception_resolve": "Resolved a record exception",
    "record_exception_apply": "Applied a record exception",
    "record_exception_dismiss": "Dismissed a record exception",
    "import_detail": "Saw in an import",
    "discrepancy_resolved": "Resolved a reconciliation discrepancy",
    "reconciliation_view": "Saw in the reconciliation",
    "reconciliation_exported": "Exported in the reconciliation CSV",
    "reverse_page": "Opened a redemption to reverse it",
    "card_link_page": "Opened the card link page",
    "admin_view_inboundevent": "Opened a webhook naming them in the admin",
    "admin_view_member": "Opened in the admin",
    "admin_list_member": "Saw in an admin list",
    "admin_view_membership": "Opened the membership in the admin",
    "admin_list_membership": "Saw the membership in an admin list",
}


def _member(request, member_id: int) -> Member:
    scope = practice_scope(request.user)
    members = Member.objects.all() if scope is None else Member.objects.filter(practice_id=scope)
    member = members.select_related("practice").filter(pk=member_id).first()
    if member is None:
        raise Http404("No such member")
    return member


@staff_page("view_dashboard")
def who_looked(request, member_id: int):
    member = _member(request, member_id)
    rows = AuditLog.objects.filter(member=member).select_related("user", "location").order_by("-created_at", "-id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    lines = [(row, ACTION_WORDS.get(row.action, row.action.replace("_", " "))) for row in page.object_list]
    audit_view(request, action="view_audit_trail", members=[member])   # after the read: the next look shows it
    return render(request, "memberships/who_looked.html", {
        "member": member, "page": page, "lines": lines, "zone": member.practice.zone,
    })
