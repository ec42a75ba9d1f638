"""The read-only mirror: spreadsheet imports, the per-member spreadsheet view, reconciliation runs
and the discrepancies they found. Written only by `billing.mirror`."""

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


class DiscrepancyKind(models.TextChoices):
    TIER_MISMATCH = "tier_mismatch", "Tier mismatch"
    PRICE_MISMATCH = "price_mismatch", "Price mismatch"
    STATUS_MISMATCH = "status_mismatch", "Status mismatch"
    BALANCE_MISMATCH = "balance_mismatch", "Balance mismatch"
    MISSING = "missing", "Missing on one side"
    UNPAID_ENTITLED = "unpaid_entitled", "Unpaid but entitled"


class ReconciliationRun(models.Model):
    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=20, default="command")
    sources = models.JSONField(default=list, help_text="Which sides were compared.")
    notes = models.JSONField(default=list, blank=True, help_text="Sides that could not be read, and why.")
    members_compared = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, help_text="kind → discrepancies found in this run")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"reconciliation {self.pk} ({self.total})"


class Discrepancy(models.Model):
    """One difference between the sides, kept across runs by its fingerprint (member, kind and the
    values seen): a resolution sticks until the values change again."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    fingerprint = models.CharField(max_length=64)
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    member_number = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=20, choices=DiscrepancyKind.choices)
    message = models.CharField(max_length=300)
    values = models.JSONField(default=dict, help_text="side → the value that side holds")
    first_seen_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")
    last_seen_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="discrepancies")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    gone_at = models.DateTimeField(null=True, blank=True, help_text="A later run no longer found it.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    resolution_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["member_number", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "fingerprint"], name="discrepancy_once"),
        ]
        indexes = [models.Index(fields=["practice", "last_seen_run"], name="discrepancy_run_idx")]
        verbose_name_plural = "discrepancies"

    def __str__(self) -> str:
        return f"{self.member_number}: {self.kind}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None and self.gone_at is None
