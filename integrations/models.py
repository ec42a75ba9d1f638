"""The edges' bookkeeping: the webhook inbox (raw events stored once) and the outbox deliveries."""

from __future__ import annotations

from django.db import models


class InboundStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class InboundEvent(models.Model):
    """A webhook as it arrived (after its signature was checked), stored once per (source, event id)
    and processed by a task. Status and error show in the admin, with an action to re-process."""

    source = models.CharField(max_length=40)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+")
    status = models.CharField(max_length=10, choices=InboundStatus.choices, default=InboundStatus.RECEIVED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The object's own timestamp (e.g. Stripe's `created`), to refuse stale events moving state back.
    object_created = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    # When a received event that could not be applied yet (its object unknown so far, the processor
    # unreachable) is tried again; null: as soon as a worker is free.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "event_id"], name="inbound_event_once"),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_status_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="inbound_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.event_type} {self.event_id} ({self.status})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    SHADOWED = "shadowed", "Shadowed (stage does not allow it yet)"
    FAILED = "failed", "Failed (business outcome, not retried)"
    DEAD = "dead", "Dead-lettered (retries exhausted)"


class Delivery(models.Model):
    """One outbound effect of one Event at one destination (processor, record, messaging)."""

    event = models.ForeignKey("memberships.Event", on_delete=models.PROTECT, related_name="deliveries")
    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    destination = models.CharField(max_length=30)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    # "would have …" in the stages that do not allow this effect yet; what was done otherwise.
    note = models.CharField(max_length=300, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "destination"], name="delivery_once_per_destination"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["practice", "status", "created_at"], name="delivery_practice_idx"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.destination} ← event {self.event_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """Stable across retries: derived from the event, so a retried call never acts twice."""
        return f"medspa-evt-{self.event_id}-{self.destination}"
