"""The manager's mirror pages: spreadsheet import, reconciliation, staged rollout. Thin: check the
permission, call a service or a selector, audit, render."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.models import ImportBatch, ImportStatus
from memberships.views.common import audit, practice_for, staff_page

from . import column_rows, create_import_batch
from .jobs import enqueue_import
from .sheet import DATE_ORDERS, FIELD_LABELS

PERMISSION = "view_dashboard"


class UploadForm(forms.Form):
    file = forms.FileField(label="Membership spreadsheet (CSV or XLSX)")
    mapping = forms.CharField(
        required=False, label="Column mapping (optional)",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Plan name = tier\nNotes ="}),
        help_text="Only where the guess is wrong: one 'Header = field' per line; an empty field ignores the column.",
    )
    date_order = forms.ChoiceField(
        required=False, label="Dates such as 03/04/2026 are",
        help_text="Used only for a column where no date shows the order (none like 13/04 or 04/13); "
                  "the check says how each date column was read.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        default = DATE_ORDERS[settings.IMPORT_DATE_ORDER]
        self.fields["date_order"].choices = [("", f"{default} (the usual setting)")] + [
            (key, label) for key, label in DATE_ORDERS.items()]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {settings.IMPORT_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        if not upload.name.lower().endswith((".csv", ".txt", ".xlsx", ".xlsm")):
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        return upload

    def clean_mapping(self):
        mapping = {}
        for number, line in enumerate((self.cleaned_data.get("mapping") or "").splitlines(), start=1):
            if not line.strip():
                continue
            header, sep, field = line.partition("=")
            if not sep or not header.strip():
                raise forms.ValidationError(f"Line {number}: write 'Header = field'.")
            mapping[header.strip()] = field.strip()
        return mapping


def _batch(request, batch_id: int) -> ImportBatch:
    practice = practice_for(request.user)
    return get_object_or_404(ImportBatch, pk=batch_id, practice=practice)


@staff_page(PERMISSION)
def import_upload(request):
    practice = practice_for(request.user)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        batch = create_import_batch(practice=practice, file_name=upload.name, content=upload.read(), dry_run=True,
                                    mapping_override=form.cleaned_data["mapping"],
                                    date_order=form.cleaned_data["date_order"], user=request.user, now=timezone.now())
        audit(request, action="import_checked", obj=batch, detail={"sha256": batch.sha256})
        enqueue_import(batch.pk)
        return redirect("mirror:import_detail", batch_id=batch.pk)
    batches = ImportBatch.objects.filter(practice=practice).defer("content")[:20]
    return render(request, "billing/import_upload.html", {
        "form": form, "batches": batches, "fields": FIELD_LABELS,
    })


@staff_page(PERMISSION)
def import_detail(request, batch_id: int):
    batch = _batch(request, batch_id)
    actions = batch.report.get("actions", [])
    return render(request, "billing/import_detail.html", {
        "batch": batch, "actions": actions[:500], "more_actions": max(0, len(actions) - 500),
        "errors": batch.errors[:1000], "more_errors": max(0, len(batch.errors) - 1000),
        "columns": column_rows(batch.report),
        "can_import": batch.dry_run and batch.status == ImportStatus.VALIDATED and not batch.errors
        and (batch.created_count or batch.changed_count),
        "can_import_valid": batch.dry_run and batch.status == ImportStatus.VALIDATED and batch.errors
        and not any(e["line"] == 0 for e in batch.errors) and (batch.created_count or batch.changed_count),
    })


@staff_page(PERMISSION)
def import_progress(request, batch_id: int):
    batch = _batch(request, batch_id)
    return JsonResponse({
        "status": batch.status, "status_display": batch.get_status_display(), "finished": batch.finished,
        "progress": batch.progress, "total": batch.total_rows, "percent": batch.progress_percent,
    })


@staff_page(PERMISSION)
@require_POST
def import_confirm(request, batch_id: int):
    checked = _batch(request, batch_id)
    if not (checked.dry_run and checked.status == ImportStatus.VALIDATED):
        raise Http404
    only_valid = request.POST.get("only_valid") == "1"
    if checked.errors and not only_valid:
        messages.error(request, "The file has errors: fix them, or choose to import only the valid rows.")
        return redirect("mirror:import_detail", batch_id=checked.pk)
    batch = create_import_batch(practice=checked.practice, file_name=checked.file_name, content=bytes(checked.content),
                                dry_run=False, only_valid_rows=only_valid, mapping_override=checked.mapping,
                                date_order=checked.date_order, user=request.user, now=timezone.now())
    audit(request, action="import_started", obj=batch,
          detail={"checked_batch": checked.pk, "only_valid_rows": only_valid, "sha256": batch.sha256})
    enqueue_import(batch.pk)
    return redirect("mirror:import_detail", batch_id=batch.pk)


# --- reconciliation ---------------------------------------------------------------------------------

def _enqueue_reconciliation(practice_id: int) -> None:
    from django.db import transaction

    def send() -> None:
        from django_q.tasks import async_task

        async_task("billing.tasks.reconcile_practice", practice_id, group="reconcile")

    transaction.on_commit(send)


@staff_page(PERMISSION)
def reconciliation(request):
    from billing.models import DiscrepancyKind

    from .selectors import discrepancies, latest_run, reconciliation_status, reconciliation_trend

    practice = practice_for(request.user)
    show = request.GET.get("show", "open")
    show = show if show in ("open", "all", "resolved") else "open"
    kind = request.GET.get("kind", "")
    kind = kind if kind in DiscrepancyKind.values else ""
    rows = discrepancies(practice_id=practice.pk, show=show, kind=kind)
    trend = reconciliation_trend(practice_id=practice.pk, limit=30)
    peak = max([p.total for p in trend] + [1])
    return render(request, "billing/reconciliation.html", {
        "run": latest_run(practice_id=practice.pk), "status": reconciliation_status(practice_id=practice.pk),
        "rows": rows[:1000], "row_count": rows.count(), "show": show, "kind": kind,
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
    from billing.models import Discrepancy
    from memberships.errors import LedgerError

    from .runs import resolve_discrepancy

    practice = practice_for(request.user)
    row = get_object_or_404(Discrepancy, pk=discrepancy_id, practice=practice)
    try:
        resolve_discrepancy(discrepancy=row, user=request.user, note=request.POST.get("note", ""), now=timezone.now())
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Marked resolved: {row.member_number or 'processor'} {row.get_kind_display().lower()}.")
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "mirror:reconciliation"
    return redirect(target)


@staff_page(PERMISSION)
def reconciliation_csv(request):
    import csv

    from django.http import HttpResponse

    from .export import safe_row
    from .selectors import discrepancies

    practice = practice_for(request.user)
    show = request.GET.get("show", "all")
    rows = discrepancies(practice_id=practice.pk, show=show if show in ("open", "all", "resolved") else "all")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="reconciliation-{practice.slug}.csv"'
    writer = csv.writer(response)
    writer.writerow(["member_number", "member_id", "kind", "sides", "message", "values", "first_seen", "last_seen",
                     "resolved_at", "resolved_by", "resolution_note"])
    for d in rows.order_by("member_number", "kind"):
        values = {k: v for k, v in d.values.items() if k != "sides"}
        writer.writerow(safe_row([
            d.member_number, d.member_id or "", d.kind, d.values.get("sides", ""), d.message,
            json.dumps(values, sort_keys=True), d.first_seen_at.isoformat(), d.last_seen_at.isoformat(),
            d.resolved_at.isoformat() if d.resolved_at else "",
            d.resolved_by.get_username() if d.resolved_by else "", d.resolution_note]))
    audit(request, action="reconciliation_exported", obj=practice, detail={"show": show})
    return response


# --- staged rollout ------------------------------------------------------------------------------------

@staff_page(PERMISSION)
def rollout(request):
    from memberships.models import AutomationStage

    from billing.metrics import payback_weeks, practice_zone

    from .rollout import STAGE_EFFECTS, STAGES, next_stage, shadow_log
    from .selectors import reconciliation_status

    practice = practice_for(request.user)
    now = timezone.now()
    current = practice.automation_stage
    rank = STAGES.index(current)
    labels = dict(AutomationStage.choices)
    stages = [{"value": s, "label": labels[s], "effects": STAGE_EFFECTS[s], "current": s == current,
               "on": i <= rank, "can_go_back": i < rank} for i, s in enumerate(STAGES)]
    upcoming = next_stage(current)
    shadow = shadow_log(practice=practice, now=now, days=30)
    next_shadow = [e for e in shadow if e.stage == upcoming]
    audit(request, action="rollout_viewed", obj=practice)
    return render(request, "billing/rollout.html", {
        "stages": stages, "status": reconciliation_status(practice_id=practice.pk),
        "next": {"value": upcoming, "label": labels[upcoming]} if upcoming else None,
        "next_shadow": next_shadow, "later_shadow_count": len(shadow) - len(next_shadow),
        "payback": payback_weeks(practice_id=practice.pk, now=now, zone=practice_zone(practice)),
    })


@staff_page(PERMISSION)
@require_POST
def rollout_stage(request):
    from memberships.errors import LedgerError
    from memberships.models import AutomationStage

    from .rollout import STAGES, set_automation_stage

    practice = practice_for(request.user)
    stage = request.POST.get("stage", "")
    moving_up = stage in STAGES and STAGES.index(stage) > STAGES.index(practice.automation_stage)
    if moving_up and request.POST.get("confirm") != "1":
        messages.error(request, "Tick the confirmation to move up a stage.")
        return redirect("mirror:rollout")
    try:
        set_automation_stage(practice=practice, stage=stage, user=request.user, now=timezone.now(),
                             ip_address=request.META.get("REMOTE_ADDR") or None)
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Automation stage is now {dict(AutomationStage.choices)[stage]}.")
    return redirect("mirror:rollout")
