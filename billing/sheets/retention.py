"""An uploaded spreadsheet is kept only IMPORT_FILE_RETENTION_DAYS (default 30): it carries every
member's contact details and often a notes column with clinical detail. After that a daily job
(medspa/schedules.py) empties the batch's file (`content` becomes b""); the batch row stays with its
counts, outcome, errors and report, which the import's page and reconciliation read. A batch still
queued or running keeps its file. A check older than that can no longer be imported or checked again
(its file is gone): its page says so and asks for the file again. Set-based: one UPDATE per batch of
ids, each its own transaction (`memberships.batches.in_batches`); run twice, the second run finds
nothing to do."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing.models import ImportBatch, ImportStatus
from memberships.batches import in_batches

logger = logging.getLogger(__name__)

FINISHED = (ImportStatus.VALIDATED, ImportStatus.IMPORTED, ImportStatus.REJECTED, ImportStatus.FAILED)


def retention_days() -> int:
    return int(settings.IMPORT_FILE_RETENTION_DAYS)


def file_removed(batch: ImportBatch) -> bool:
    """Whether the batch's file was emptied by the retention job (a finished batch with no file)."""
    return batch.finished and not len(batch.content or b"")


def remove_old_import_files(*, now: datetime, batch_size: int = 200) -> int:
    """Empty the file of every finished batch uploaded more than IMPORT_FILE_RETENTION_DAYS before
    `now`; returns how many were emptied."""
    cutoff = now - timedelta(days=retention_days())
    due = (ImportBatch.objects.filter(status__in=FINISHED, created_at__lt=cutoff).exclude(content=b"")
           .order_by("pk").values_list("pk", flat=True))
    # the status is checked again: a batch is never emptied under a run
    return in_batches(due, lambda ids: ImportBatch.objects.filter(pk__in=ids, status__in=FINISHED,
                                                                  created_at__lt=cutoff).update(content=b""),
                      batch_size=batch_size)


def remove_old_import_files_task() -> int:
    """Daily (medspa/schedules.py). Logs the count only."""
    emptied = remove_old_import_files(now=timezone.now())
    logger.info("import retention: %d uploaded files removed", emptied)
    return emptied
