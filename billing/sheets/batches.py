"""An import batch, as the page and the command run it: the uploaded file kept with the manager's
choices (dry run, only the valid rows, column mapping, date order), put on the queue after the
transaction that created it, then checked and, unless it is a dry run or has errors the manager did
not choose to skip, imported; its progress, counts, errors and report saved on the batch."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from datetime import datetime

from django.db import transaction

from billing.models import ImportBatch, ImportStatus
from memberships.failures import log_failure
from memberships.models import Practice

from .checking import ProgressCallback, check_import
from .values import DATE_ORDERS
from .writing import apply_import

logger = logging.getLogger(__name__)

MAX_STORED_ACTIONS = 2000


def enqueue_import(batch_id: int) -> None:
    def send() -> None:
        from django_q.tasks import async_task

        async_task("billing.tasks.run_import", batch_id, group="import")

    transaction.on_commit(send)


def column_rows(report: dict) -> list[tuple[str, str, str]]:
    """A batch's columns: (header, field or "" when ignored, how it is read or why it is not)."""
    notes = report.get("column_notes", {})
    return ([(header, field, notes.get(header, "")) for header, field in report.get("mapping", {}).items()]
            + [(header, "", notes.get(header, "")) for header in report.get("ignored_columns", [])])


def create_import_batch(*, practice: Practice, file_name: str, content: bytes, dry_run: bool,
                        only_valid_rows: bool = False, mapping_override: dict[str, str] | None = None,
                        date_order: str = "", user=None, now: datetime) -> ImportBatch:
    if date_order and date_order not in DATE_ORDERS:
        raise ValueError(f"date_order is one of {', '.join(DATE_ORDERS)}, not {date_order!r}")
    return ImportBatch.objects.create(
        practice=practice, file_name=file_name[:255], sha256=hashlib.sha256(content).hexdigest(),
        content=content, dry_run=dry_run, only_valid_rows=only_valid_rows, mapping=mapping_override or {},
        date_order=date_order, created_by=user, created_at=now,
    )


def recheck_with_columns(*, batch: ImportBatch, answers: dict[str, str], user=None, now: datetime) -> ImportBatch:
    """A new check of the batch's file with the manager's answers about some columns (header → field,
    "" to ignore) over the batch's own mapping."""
    return create_import_batch(practice=batch.practice, file_name=batch.file_name, content=bytes(batch.content),
                               dry_run=True, mapping_override={**(batch.mapping or {}), **answers},
                               date_order=batch.date_order, user=user, now=now)


def run_import_batch(*, batch_id: int, now: datetime, on_progress: ProgressCallback | None = None) -> ImportBatch:
    """Check the batch's file, and import it unless it is a dry run or has errors the manager did
    not choose to skip. Progress is saved as it goes, for the page's progress bar."""
    batch = ImportBatch.objects.select_related("practice").get(pk=batch_id)
    if batch.finished:
        return batch

    def progress(phase: str, done: int, total: int) -> None:
        status = ImportStatus.VALIDATING if phase == "check" else ImportStatus.IMPORTING
        ImportBatch.objects.filter(pk=batch.pk).update(status=status, progress=done, total_rows=total)
        if on_progress:
            on_progress(phase, done, total)

    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportStatus.VALIDATING, progress=0)
    try:
        check = check_import(practice=batch.practice, content=bytes(batch.content), file_name=batch.file_name,
                             now=now, mapping_override=batch.mapping or None, date_order=batch.date_order,
                             on_progress=progress)
        rejected = check.rejected_lines
        batch.total_rows = check.total_rows
        batch.created_count = check.count("create")
        batch.changed_count = check.count("change")
        batch.unchanged_count = check.count("unchanged")
        batch.rejected_count = len(rejected - {0})
        batch.errors = [asdict(e) for e in check.errors]
        batch.report = {
            "mapping": check.mapping,
            "ignored_columns": check.ignored_columns,
            "column_notes": check.column_notes,
            "date_order": check.date_order,
            "suggestions": check.suggestions,
            "left_out": check.left_out,
            "warnings": [asdict(w) for w in check.warnings][:MAX_STORED_ACTIONS],
            "actions": [{"line": p.line, "member_number": p.member_number, "action": p.action, "detail": p.detail}
                        for p in check.planned if p.action != "unchanged"][:MAX_STORED_ACTIONS],
        }
        file_level = 0 in rejected
        if batch.dry_run:
            batch.status = ImportStatus.VALIDATED
        elif file_level or (check.errors and not batch.only_valid_rows):
            batch.status = ImportStatus.REJECTED
        else:
            if check.errors:
                batch.report["skipped_rows"] = sorted(rejected)
            apply_import(practice=batch.practice, check=check, batch=batch, now=now, on_progress=progress)
            batch.status = ImportStatus.IMPORTED
    except Exception as exc:  # logged by ids: a database error quotes the row's email or phone
        log_failure(logger, "import batch %s failed", batch.pk, exc=exc)
        batch.status = ImportStatus.FAILED
        batch.errors = list(batch.errors or []) + [
            {"line": 0, "column": "", "message": "The import stopped on an unexpected error; nothing of the "
                                                 "unfinished chunk was written. Run it again to finish."}]
    batch.progress = batch.total_rows if batch.status != ImportStatus.FAILED else batch.progress
    batch.finished_at = now
    batch.save(update_fields=["status", "total_rows", "progress", "created_count", "changed_count",
                              "unchanged_count", "rejected_count", "errors", "report", "finished_at"])
    logger.info("import batch %s: %s (%s rows)", batch.pk, batch.status, batch.total_rows)
    return batch
