"""The member's timeline (which is also the outbox), chart flags, and the record of idempotent
service calls (`Operation`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .append_only import AppendOnlyModel
from .ledger import ActorType
from .members import Member
from .membership import Membership
from .practice import Practice


class EventKind(models.TextChoices):
    ENROLLED = "enrolled", "Enrolled"
    CHARGE_SUCCEEDED = "charge_succeeded", "Charge succeeded"
    REFILLED = "refilled", "Entitlements refilled"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    PAYMENT_ACTION_REQUIRED = "payment_action_required", "Payment needs the member's action"
    PAST_DUE = "past_due", "Marked past due"
    RECOVERED = "recovered", "Payment recovered"
    LAPSED = "lapsed", "Lapsed"
    FLAGGED = "flagged", "Chart flagged"
    FLAG_CLEARED = "flag_cleared", "Chart flag cleared"
    REDEEMED = "redeemed", "Redeemed"
    RESERVED = "reserved", "Reserved"
    RESERVATION_COMMITTED = "reservation_committed", "Reservation used"
    RESERVATION_RELEASED = "reservation_released", "Reservation released"
    REVERSED = "reversed", "Entry reversed"
    ADJUSTED = "adjusted", "Balance adjusted"
    EXPIRED = "expired", "Credit expired"
    TIER_CHANGED = "tier_changed", "Tier changed"
    TIER_CHANGE_SCHEDULED = "tier_change_scheduled", "Tier change scheduled"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    CANCELLED = "cancelled", "Cancelled"
    MESSAGE_SENT = "message_sent", "Message sent"
    DUNNING = "dunning", "Dunning"
    RECORD_EXCEPTION = "record_exception", "Record exception"
    IMPORTED = "imported", "Imported"
    NOTE = "note", "Note"
    # Dunning (billing): one case per failed invoice, its retries and messages.
    DUNNING_OPENED = "dunning_opened", "Dunning case opened"
    DUNNING_RETRY = "dunning_retry", "Payment retry requested"
    DUNNING_ATTEMPT = "dunning_attempt", "Payment retry result"
    DUNNING_MESSAGE = "dunning_message", "Member message queued"
    DUNNING_CLOSED = "dunning_closed", "Dunning case closed"
    SMS_OPTED_OUT = "sms_opted_out", "SMS opt-out recorded"
    SMS_OPTED_IN = "sms_opted_in", "SMS opt-in recorded"
    # The member's own page: a sign-in link sent, a request filed or decided.
    MEMBER_LINK = "member_link", "Member page link sent"
    MEMBER_REQUEST = "member_request", "Member request"


class Event(AppendOnlyModel):
    """The member's timeline and the outbox at once: written in the same transaction as the change.
    `payload` holds ids and amounts, never clinical detail or contact data."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="events")
    # No index of its own: `event_timeline_idx` (member, -created_at) serves it.
    member = models.ForeignKey(Member, on_delete=models.PROTECT, null=True, blank=True, related_name="events",
                               db_index=False)
    membership = models.ForeignKey(
        Membership, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    summary = models.CharField(max_length=300)
    payload = models.JSONField(default=dict, blank=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices, default=ActorType.SYSTEM)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["member", "-created_at"], name="event_timeline_idx"),
            models.Index(fields=["kind", "created_at"], name="event_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"


class ChartFlagStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLEARED = "cleared", "Cleared"


class ChartFlag(models.Model):
    """A banner on the member's chart ("Card declined — update card before treatment"), raised and
    cleared by a source (e.g. a dunning case) through `memberships.services.set_chart_flag` /
    `clear_chart_flag`, each change an Event (FLAGGED / FLAG_CLEARED) the record adapters deliver.
    The text is operational, never clinical."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="chart_flags")
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=30, help_text="What raised it, e.g. 'dunning'.")
    source_ref = models.CharField(max_length=100, help_text="The raising object, e.g. 'dunning-case:12'.")
    text = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=ChartFlagStatus.choices, default=ChartFlagStatus.OPEN)
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source_ref"], condition=Q(status="open"),
                                    name="chart_flag_one_open_per_source"),
        ]
        indexes = [models.Index(fields=["member", "status"], name="chart_flag_member_idx")]

    def __str__(self) -> str:
        return f"{self.text} ({self.status})"


class Operation(models.Model):
    """One row per idempotent service call: replaying the key returns what the first call made."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=50)
    result_model = models.CharField(max_length=50)
    result_id = models.BigIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} {self.idempotency_key}"
