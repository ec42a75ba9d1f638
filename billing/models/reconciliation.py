"""Reconciliation: each run that compared the ledger with the spreadsheet, the processor and the
record, and the discrepancies found, kept across runs. Written only by `billing.reconciliation`."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
