"""Spreadsheet imports: one batch per upload (what it would do or did), and the spreadsheet's view
of each member as of the last import that changed it. Written only by `billing.sheets`."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    VALIDATING = "validating", "Checking rows"
    VALIDATED = "validated", "Checked (dry run)"
    IMPORTING = "importing", "Importing"
    IMPORTED = "imported", "Imported"
    REJECTED = "rejected", "Rejected (errors, nothing written)"
    FAILED = "failed", "Failed"


class ImportBatch(models.Model):
    """One upload of a membership spreadsheet: what it would do or did, row-level errors, progress."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    content = models.BinaryField(help_text="The uploaded file, kept so the import can run as a task.")
    dry_run = models.BooleanField(default=True)
    only_valid_rows = models.BooleanField(default=False, help_text="The manager chose to skip rejected rows.")
    mapping = models.JSONField(default=dict, blank=True, help_text="Column header → field.")
    date_order = models.CharField(max_length=3, blank=True, choices=[("mdy", "month/day"), ("dmy", "day/month")],
                                  help_text="How dates like 03/04/2026 are read when the column does not settle "
                                            "it; empty: the IMPORT_DATE_ORDER setting.")
    status = models.CharField(max_length=12, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    progress = models.PositiveIntegerField(default=0, help_text="Rows done in the current phase.")
    created_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, column, message}]")
    report = models.JSONField(default=dict, blank=True, help_text="Planned actions, ignored columns, notes.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} {self.file_name} ({self.status})"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.progress / self.total_rows) if self.total_rows else 0

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.VALIDATED, ImportStatus.IMPORTED, ImportStatus.REJECTED,
                               ImportStatus.FAILED)


class SheetRow(models.Model):
    """The spreadsheet's view of one member, as of the last import that changed it: what
    reconciliation compares the ledger, the processor and the record against."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="+")
    member_number = models.CharField(max_length=20)
    batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, related_name="sheet_rows")
    line = models.PositiveIntegerField()
    tier_code = models.CharField(max_length=50)
    status = models.CharField(max_length=12)
    price_cents = models.BigIntegerField(null=True, blank=True)
    balances = models.JSONField(default=dict, help_text="service code → units or cents")
    processor_customer_id = models.CharField(max_length=100, blank=True)
    processor_subscription_id = models.CharField(max_length=100, blank=True)
    record_patient_id = models.CharField(max_length=100, blank=True)
    row_hash = models.CharField(max_length=64)
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "member_number"], name="sheet_row_unique"),
        ]

    def __str__(self) -> str:
        return f"sheet {self.member_number} {self.tier_code} {self.status}"
