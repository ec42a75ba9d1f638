"""The manager's import pages: upload a spreadsheet (checked as a dry run), follow its progress, see
what it would do, and confirm the import. Thin: check the permission, call a service, audit, render."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.models import ImportBatch, ImportStatus
from memberships.models import Member, Service
from memberships.views.common import audit, audit_view, practice_for, staff_page

from .batches import column_rows, create_import_batch, enqueue_import, recheck_with_columns
from .columns import BALANCE_PREFIX, FIELD_LABELS
from .reading import SheetError, sniff_format
from .retention import file_removed, retention_days
from .values import DATE_ORDERS

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
        """The file's size, and what it is by its content (a PDF renamed .csv is refused as a PDF)."""
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {settings.IMPORT_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        content = upload.read()
        try:
            sniff_format(content)
        except SheetError as exc:
            raise forms.ValidationError(f"{upload.name}: {exc}") from None
        self.content = content
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


def _too_old(request, checked: ImportBatch):
    """A check whose file the retention job removed cannot be imported or checked again: say so."""
    messages.error(request, f"This check is too old: its file was removed {retention_days()} days after it was "
                            "uploaded. Upload the file again to check and import it.")
    return redirect("mirror:import_detail", batch_id=checked.pk)


@staff_page(PERMISSION)
def import_upload(request):
    practice = practice_for(request.user)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        batch = create_import_batch(practice=practice, file_name=upload.name, content=form.content, dry_run=True,
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
    removed = file_removed(batch)
    _audit_detail(request, batch, actions[:500], batch.errors[:1000] + batch.report.get("warnings", []))
    return render(request, "billing/import_detail.html", {
        "batch": batch, "actions": actions[:500], "more_actions": max(0, len(actions) - 500),
        "errors": batch.errors[:1000], "more_errors": max(0, len(batch.errors) - 1000),
        "columns": column_rows(batch.report),
        "suggestions": [] if removed else _suggestions(batch),
        "file_removed": removed, "retention_days": retention_days(),
        "can_import": not removed and batch.dry_run and batch.status == ImportStatus.VALIDATED and not batch.errors
        and (batch.created_count or batch.changed_count),
        "can_import_valid": not removed and batch.dry_run and batch.status == ImportStatus.VALIDATED and batch.errors
        and not any(e["line"] == 0 for e in batch.errors) and (batch.created_count or batch.changed_count),
    })


# "already member M0001's", "could be member M0001 or M0002", "the same member (M0001) as line 3",
# "duplicate member: M0001 is already on line 2", "that of Ana Garcia (M0001)"
_NAMED_MEMBERS = re.compile(r"\bmember:? \(?([^\s,'()]+(?:(?:, | or )[^\s,'()]+)*)|\bis that of [^(]*\(([^\s(),]+)\)")


def _audit_detail(request, batch: ImportBatch, shown: list[dict], errors: list[dict]) -> None:
    """One audit row per ledger member the page lists (one INSERT) — in its plan, or named by an
    error ("already member M0001's (Ana Garcia)", "could be member M0001 or M0002"); a check whose
    rows are not members yet leaves one row for the batch."""
    numbers = {action.get("member_number") for action in shown} - {None, ""}
    for error in errors:
        for named, owner in _NAMED_MEMBERS.findall(str(error.get("message", ""))):
            numbers.update(re.split(r", | or ", named) if named else [owner])
    members = list(Member.objects.filter(practice_id=batch.practice_id, member_number__in=numbers)
                   .values_list("pk", flat=True)) if numbers else []
    audit_view(request, action="import_detail", obj=batch, members=members or [None])


def _suggestions(batch: ImportBatch) -> list[dict]:
    """The balance-like columns of a check the manager is asked about, each with the services to choose
    from (the suggested one first, selected)."""
    found = batch.report.get("suggestions", [])
    if not found or batch.status != ImportStatus.VALIDATED:
        return []
    services = [(f"{BALANCE_PREFIX}{code}", name) for code, name in
                Service.objects.filter(practice=batch.practice, active=True).order_by("name").values_list("code", "name")]
    return [{**item, "choices": services} for item in found]


@staff_page(PERMISSION)
@require_POST
def import_columns(request, batch_id: int):
    """The manager's answer about balance-like columns: check the same file again with them mapped
    (to a service's balance, or ignored)."""
    checked = _batch(request, batch_id)
    asked = {item["header"] for item in checked.report.get("suggestions", [])}
    if not (checked.dry_run and checked.status == ImportStatus.VALIDATED and asked):
        raise Http404
    if file_removed(checked):
        return _too_old(request, checked)
    valid = {f"{BALANCE_PREFIX}{code}" for code in
             Service.objects.filter(practice=checked.practice, active=True).values_list("code", flat=True)}
    answers = {}
    for number in range(len(asked)):
        header = request.POST.get(f"column-{number}-header", "")
        target = request.POST.get(f"column-{number}-target")
        if header in asked and target is not None and (target in valid or target == ""):
            answers[header] = target
    if len(answers) != len(asked):
        messages.error(request, "Choose a service, or to ignore it, for every column asked about.")
        return redirect("mirror:import_detail", batch_id=checked.pk)
    batch = recheck_with_columns(batch=checked, answers=answers, user=request.user, now=timezone.now())
    audit(request, action="import_checked", obj=batch, detail={"checked_batch": checked.pk, "sha256": batch.sha256})
    enqueue_import(batch.pk)
    return redirect("mirror:import_detail", batch_id=batch.pk)


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
    if file_removed(checked):
        return _too_old(request, checked)
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
