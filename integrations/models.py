"""The edges' bookkeeping: the webhook inbox (raw events stored once) and the outbox deliveries."""

from __future__ import annotations

from django.conf import settings
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
    # When the full payload was reduced to ids and outcome (INBOX_RETENTION_DAYS after it arrived).
    reduced_at = models.DateTimeField(null=True, blank=True)

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
    # A member message handed to its provider (SMS, email: no idempotency key there): the mark is
    # committed before the call, so a worker that dies during it leaves the row here, never PENDING.
    SENDING = "sending", "Sending (handed to the provider)"
    # A SENDING row whose worker never came back: the message may have gone. Not sent again unless
    # a manager redelivers it.
    UNCERTAIN = "uncertain", "May have been sent (outcome not recorded)"


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
    # When the worker handing it to the provider marked it SENDING (kept when it became UNCERTAIN).
    sending_since = models.DateTimeField(null=True, blank=True)
    # A manager looked at a dead, failed or may-have-been-sent delivery and closed it: nothing more to
    # do (it can't or needn't go again). It leaves "Needs attention"; a later redelivery clears it.
    checked_at = models.DateTimeField(null=True, blank=True)
    checked_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

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


class RecordExceptionKind(models.TextChoices):
    UNKNOWN_PATIENT = "unknown_patient", "Unknown patient"
    UNKNOWN_SERVICE = "unknown_service", "Unknown service code"
    NO_MEMBERSHIP = "no_membership", "No membership"
    NOT_INCLUDED = "not_included", "Service not included in the tier"
    NO_BALANCE = "no_balance", "No balance left"
    NOT_REDEEMABLE = "not_redeemable", "Membership may not redeem now"
    REVIEW = "review", "Reported before the redemptions stage (not spent)"
    INVALID = "invalid", "Invalid record event"


class RecordExceptionStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"  # by hand, with a note
    APPLIED = "applied", "Applied"  # a held treatment redeemed through the ledger by staff
    DISMISSED = "dismissed", "Dismissed"  # a held treatment staff said not to spend


class RecordException(models.Model):
    """A record event the ledger could not (or, in this stage, may not) act on by itself: staff
    resolve it by hand. Never a silent drop, never a negative balance. One row per (practice,
    appointment, kind), so a replayed webhook does not open a second one."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+")
    service = models.ForeignKey("memberships.Service", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+")
    inbound = models.ForeignKey(InboundEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20, choices=RecordExceptionKind.choices)
    # What the record reported: "treatment.completed" / "appointment.booked" / "appointment.cancelled".
    event_type = models.CharField(max_length=40)
    appointment_ref = models.CharField(max_length=200, help_text="The record's appointment id.")
    patient_ref = models.CharField(max_length=200, blank=True, help_text="The record's patient id.")
    service_ref = models.CharField(max_length=200, blank=True, help_text="The record's service code.")
    quantity = models.PositiveIntegerField(default=1)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When the record says it happened.")
    detail = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=RecordExceptionStatus.choices,
                              default=RecordExceptionStatus.OPEN)
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "appointment_ref", "event_type", "kind"],
                                    name="record_exception_once"),
        ]
        indexes = [models.Index(fields=["practice", "status", "created_at"], name="record_exception_open_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — appointment {self.appointment_ref} ({self.status})"


class RecordAppointment(models.Model):
    """What the ledger has heard about one appointment of the record, whatever the order the
    webhooks came in: a cancellation or a completed treatment is remembered, so a booking that
    arrives after either holds nothing. Its row is also the lock that serializes the events of one
    appointment (two workers never apply a booking and its cancellation at the same time)."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    appointment_ref = models.CharField(max_length=200, help_text="The record's appointment id.")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=20, blank=True, help_text="cancelled / no_show")
    completed_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "appointment_ref"], name="record_appointment_once"),
        ]

    def __str__(self) -> str:
        return f"appointment {self.appointment_ref}"


class RecordServiceMap(models.Model):
    """The record's own service code → our Service. Without a row, a code equal to `Service.code`
    matches."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    external_code = models.CharField(max_length=200)
    service = models.ForeignKey("memberships.Service", on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "external_code"], name="record_service_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.external_code} → {self.service}"


class RecordObject(models.Model):
    """An object we created in a record that has no searchable identifier of ours (a Zenoti guest
    note): remembered so the next write updates it instead of making another."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="+")
    adapter = models.CharField(max_length=20)
    kind = models.CharField(max_length=20, help_text="flag / summary")
    external_id = models.CharField(max_length=200)
    state = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "adapter", "kind"], name="record_object_once"),
        ]

    def __str__(self) -> str:
        return f"{self.adapter} {self.kind} {self.external_id}"


class SmsHoldOutcome(models.TextChoices):
    OPTED_OUT = "opted_out", "It is an opt-out (recorded)"
    RESUMED = "resumed", "Not an opt-out (texts resume)"


class SmsHold(models.Model):
    """A member's SMS reply that looks like a refusal without being a plain STOP ("don't text me",
    "Can I stop by at 3?"): automated texts to the member wait until a person at the practice reads
    it and says whether it is an opt-out. One open hold per member; the reply's text is kept here
    only, for that person (never in a log, an event or the inbox)."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="+")
    inbound = models.ForeignKey(InboundEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    text = models.CharField(max_length=320, help_text="What the member wrote.")
    reason = models.CharField(max_length=40, help_text="The keyword or refusal phrase read in it.")
    opened_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    outcome = models.CharField(max_length=10, choices=SmsHoldOutcome.choices, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["member"], condition=models.Q(cleared_at__isnull=True),
                                    name="sms_hold_one_open_per_member"),
            models.CheckConstraint(condition=models.Q(cleared_at__isnull=True, outcome="")
                                   | models.Q(cleared_at__isnull=False) & ~models.Q(outcome=""),
                                   name="sms_hold_cleared_with_outcome"),
        ]
        indexes = [models.Index(fields=["practice", "cleared_at", "opened_at"], name="sms_hold_queue_idx")]

    def __str__(self) -> str:
        return f"SMS hold {self.pk} (member {self.member_id}, {'open' if self.cleared_at is None else self.outcome})"
