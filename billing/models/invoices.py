"""Invoices and subscriptions: a mirror of the processor's, as last reported. Rows are written only
by `billing.services`, from normalized processor facts; they never decide entitlements themselves."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open (unpaid)"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


class Invoice(models.Model):
    """One processor invoice (one billing cycle of one membership). `last_event_created` is the
    watermark: the processor's timestamp of the newest event applied, so a stale event never moves
    the status back (a paid invoice stays paid)."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="invoices")
    membership = models.ForeignKey("memberships.Membership", on_delete=models.PROTECT, related_name="invoices")
    processor = models.CharField(max_length=20, default="stripe")
    processor_invoice_id = models.CharField(max_length=100)
    processor_subscription_id = models.CharField(max_length=100, blank=True)
    amount_cents = models.BigIntegerField(help_text="Amount due, in cents.")
    amount_paid_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=15, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(max_length=60, blank=True)
    last_decline_code = models.CharField(max_length=60, blank=True)
    hard_decline = models.BooleanField(default=False)
    action_required = models.BooleanField(default=False, help_text="The member must authenticate the charge.")
    failed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # Paid and opened a billing cycle (refilled): the order of paid cycles decides what a late fact means.
    opened_cycle = models.BooleanField(default=False)
    # The processor's own timestamps (unix seconds): the invoice's `created`, and the newest event.
    processor_created = models.BigIntegerField(default=0)
    last_event_created = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["processor", "processor_invoice_id"], name="invoice_once"),
            models.CheckConstraint(condition=Q(amount_cents__gte=0), name="invoice_amount_gte_0"),
            models.CheckConstraint(condition=Q(amount_paid_cents__gte=0), name="invoice_paid_gte_0"),
        ]
        indexes = [
            models.Index(fields=["membership", "-created_at"], name="invoice_membership_idx"),
            models.Index(fields=["practice", "status", "created_at"], name="invoice_practice_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.processor_invoice_id} {self.amount_cents / 100:,.2f} {self.currency} ({self.status})"

    @property
    def amount_display(self) -> str:
        return f"${self.amount_cents / 100:,.2f}"


class ProcessorSubscription(models.Model):
    """The processor's subscription as last reported, with its event watermark."""

    membership = models.ForeignKey("memberships.Membership", on_delete=models.PROTECT,
                                   related_name="processor_subscriptions")
    processor = models.CharField(max_length=20, default="stripe")
    processor_subscription_id = models.CharField(max_length=100)
    processor_customer_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=30, blank=True)
    price_ref = models.CharField(max_length=100, blank=True)
    amount_cents = models.BigIntegerField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    collection_paused = models.BooleanField(default=False)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    last_event_created = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["processor", "processor_subscription_id"], name="processor_sub_once"),
        ]

    def __str__(self) -> str:
        return f"{self.processor_subscription_id} ({self.status})"

