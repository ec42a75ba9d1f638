"""The manager's reconciliation pages: the latest run's discrepancies with the trend, a run on
demand, a discrepancy marked resolved, the CSV export. Thin: check the permission, call a service or
a selector, audit, render."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing.models import Discrepancy, DiscrepancyKind
from billing.sheets.export import safe_row
from memberships.errors import LedgerError
from memberships.services import Actor
from memberships.views.common import audit, audit_view, client_ip, practice_for, staff_page

from .runs import resolve_discrepancy
from .selectors import discrepancies, latest_run, reconciliation_status, reconciliation_trend

PERMISSION = "view_dashboard"


def _enqueue_reconciliation(practice_id: int) -> None:
    def send() -> None:
        from django_q.tasks import async_task

        async_task("billing.tasks.reconcile_practice", practice_id, group="reconcile")

    transaction.on_commit(send)


@staff_page(PERMISSION)
def reconciliation(request):
    practice = practice_for(request.user)
    show = request.GET.get("show", "open")
    show = show if show in ("open", "all", "resolved") else "open"
    kind = request.GET.get("kind", "")
    kind = kind if kind in DiscrepancyKind.values else ""
    rows = discrepancies(practice_id=practice.pk, show=show, kind=kind)
    trend = reconciliation_trend(practice_id=practice.pk, limit=30)
    peak = max([p.total for p in trend] + [1])
    shown = list(rows[:1000])
    audit_view(request, action="reconciliation_view", members=[d.member_id for d in shown if d.member_id])
    return render(request, "billing/reconciliation.html", {
        "run": latest_run(practice_id=practice.pk), "status": reconciliation_status(practice_id=practice.pk),
        "rows": shown, "row_count": rows.count(), "show": show, "kind": kind,
        "kinds": DiscrepancyKind.choices, "trend": [(p, int(100 * p.total / peak)) for p in trend],
    })


@staff_page(PERMISSION)
@require_POST
def reconciliation_run(request):
    practice = practice_for(request.user)
    audit(request, action="reconciliation_requested", obj=practice)
    _enqueue_reconciliation(practice.pk)
    messages.success(request, "Reconciliation started; reload in a moment to see its result.")
    return redirect("mirror:reconciliation")


@staff_page(PERMISSION)
@require_POST
def discrepancy_resolve(request, discrepancy_id: int):
    practice = practice_for(request.user)
    row = get_object_or_404(Discrepancy, pk=discrepancy_id, practice=practice)
    try:
        resolve_discrepancy(discrepancy=row, actor=Actor.staff(request.user, ip_address=client_ip(request)),
                            note=request.POST.get("note", ""), now=timezone.now())
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        who = row.member.full_name if row.member_id else (row.member_number or "processor")
        messages.success(request, f"Marked resolved: {who}, {row.get_kind_display().lower()}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "mirror:reconciliation"
    return redirect(target)


@staff_page(PERMISSION)
def reconciliation_csv(request):
    practice = practice_for(request.user)
    show = request.GET.get("show", "all")
    rows = discrepancies(practice_id=practice.pk, show=show if show in ("open", "all", "resolved") else "all")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reconciliation-{practice.slug}.csv"'
    writer = csv.writer(response)
    writer.writerow(["member_number", "member_id", "kind", "sides", "message", "values", "first_seen", "last_seen",
                     "resolved_at", "resolved_by", "resolution_note"])
    members = []
    for d in rows.order_by("member_number", "kind"):
        members.append(d.member_id)
        values = {k: v for k, v in d.values.items() if k != "sides"}
        writer.writerow(safe_row([
            d.member_number, d.member_id or "", d.kind, d.values.get("sides", ""), d.message,
            json.dumps(values, sort_keys=True), d.first_seen_at.isoformat(), d.last_seen_at.isoformat(),
            d.resolved_at.isoformat() if d.resolved_at else "",
            d.resolved_by.get_username() if d.resolved_by else "", d.resolution_note]))
    # One row per member in the file (one without a member when it lists none: the export itself).
    audit_view(request, action="reconciliation_exported", obj=practice, detail={"show": show},
               members=[m for m in members if m is not None] or [None])
    return response

