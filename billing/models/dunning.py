"""Dunning: versioned policies a manager edits, one case per failed invoice, and the case's due
work (steps), payment retries and member messages. State changes happen only in `billing.dunning`;
every one is an Event on the member's timeline."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

DEFAULT_RETRY_OFFSETS = [0, 3, 5, 7]
DEFAULT_STEP_CHANNELS = ["both", "sms", "email", "both"]
DEFAULT_FLAG_TEXT = "Card declined — update card before treatment"
DEFAULT_SMS_TEMPLATE = (
    "Hi {{ first_name }}, the card on file for your {{ practice_name }} membership was declined. "
    "Please update it here: {{ card_update_link }} Reply STOP to opt out."
)
DEFAULT_EMAIL_SUBJECT = "{{ practice_name }}: please update your card"
DEFAULT_EMAIL_BODY = (
    "Hi {{ first_name }},\n\n"
    "The card on file for your {{ practice_name }} membership was declined, so this month's payment "
    "did not go through. You can update your card securely here:\n\n"
    "{{ card_update_link }}\n\n"
    "Thank you,\n{{ practice_name }}\n"
)


def default_offsets() -> list[int]:
    return list(DEFAULT_RETRY_OFFSETS)


def default_channels() -> list[str]:
    return list(DEFAULT_STEP_CHANNELS)


class StepChannels(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    BOTH = "both", "SMS and email"
    NONE = "none", "No message"


class ExhaustedAction(models.TextChoices):
    PAUSE = "pause", "Pause entitlements (membership lapses until paid)"
    CANCEL = "cancel", "Cancel the membership"


class DunningPolicy(models.Model):
    """Versioned data: editing makes a new row (`version` + 1, `is_current`); open cases keep the
    version they started under. Offset 0 is the failed charge itself (no retry, first message);
    each later offset is a retry (unless the processor's own retries are used) and its messages."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="dunning_policies")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    retry_offsets_days = models.JSONField(default=default_offsets,
                                          help_text="Days after the failure, ascending, e.g. [0, 3, 5, 7].")
    step_channels = models.JSONField(default=default_channels,
                                     help_text="Per offset: sms, email, both or none.")
    use_processor_retries = models.BooleanField(
        default=False, help_text="Leave retries to the processor's own smart retries; we only message.")
    exhaust_after_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days after the failure when the case is exhausted (blank: the last offset).")
    exhausted_action = models.CharField(max_length=10, choices=ExhaustedAction.choices, default=ExhaustedAction.PAUSE)
    flag_text = models.CharField(max_length=200, default=DEFAULT_FLAG_TEXT)
    sms_template = models.TextField(default=DEFAULT_SMS_TEMPLATE)
    email_subject_template = models.CharField(max_length=200, default=DEFAULT_EMAIL_SUBJECT)
    email_body_template = models.TextField(default=DEFAULT_EMAIL_BODY)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")

    class Meta:
        verbose_name_plural = "dunning policies"
        ordering = ["practice", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "version"], name="dunning_policy_version_unique"),
            models.UniqueConstraint(fields=["practice"], condition=Q(is_current=True),
                                    name="dunning_policy_one_current"),
        ]

    def __str__(self) -> str:
        return f"Dunning policy v{self.version} ({self.practice})"

    @property
    def exhaust_offset_days(self) -> int:
        last = max(self.retry_offsets_days or [0])
        return max(self.exhaust_after_days if self.exhaust_after_days is not None else last, last)


class DunningCaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    RECOVERED = "recovered", "Recovered"
    EXHAUSTED = "exhausted", "Exhausted"
    CANCELLED = "cancelled", "Cancelled"
    # The processor will not collect the invoice any more: no payment is expected. Voided (Stripe) or
    # cancelled (Square) is forgiven; marked uncollectible (Stripe) is a debt written off.
    FORGIVEN = "forgiven", "Forgiven (voided at the processor)"
    WRITTEN_OFF = "written_off", "Written off (uncollectible at the processor)"


class DunningCase(models.Model):
    """One per failed invoice, however many failure webhooks arrive (unique on the invoice)."""

    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="dunning_cases")
    membership = models.ForeignKey("memberships.Membership", on_delete=models.PROTECT, related_name="dunning_cases")
    policy = models.ForeignKey(DunningPolicy, on_delete=models.PROTECT, related_name="cases")
    invoice_ref = models.CharField(max_length=100, help_text="The processor's invoice id.")
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    decline_code = models.CharField(max_length=60, blank=True)
    hard = models.BooleanField(default=False, help_text="Hard decline: no automatic retries; a new card is needed.")
    status = models.CharField(max_length=12, choices=DunningCaseStatus.choices, default=DunningCaseStatus.OPEN)
    failure_count = models.PositiveIntegerField(default=1)
    last_failure_at = models.DateTimeField()
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    last_contacted_at = models.DateTimeField(null=True, blank=True)
    # The earliest pending step, kept by the services for the queue page (the steps are the record).
    next_action_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "invoice_ref"], name="dunning_case_one_per_invoice"),
            models.CheckConstraint(condition=Q(amount_cents__gte=0), name="dunning_case_amount_gte_0"),
        ]
        indexes = [models.Index(fields=["practice", "status", "opened_at"], name="dunning_case_queue_idx")]

    def __str__(self) -> str:
        return f"Dunning case {self.pk} ({self.invoice_ref}, {self.status})"

    @property
    def flag_ref(self) -> str:
        return f"dunning-case:{self.pk}"


class StepKind(models.TextChoices):
    RETRY = "retry", "Payment retry"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    EXHAUST = "exhaust", "Exhaust"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"


class DunningStep(models.Model):
    """Due work of a case, stored here (never only in the task queue): the scheduled run picks up
    every pending step whose `due_at` has passed. A step in quiet hours is deferred (`due_at` moves,
    `deferred_from` keeps the original)."""

    case = models.ForeignKey(DunningCase, on_delete=models.PROTECT, related_name="steps")
    key = models.CharField(max_length=40, help_text="Unique per case, e.g. 'step2:retry'.")
    number = models.PositiveIntegerField(help_text="The policy offset index; card-update retries use 100+.")
    kind = models.CharField(max_length=10, choices=StepKind.choices)
    due_at = models.DateTimeField()
    deferred_from = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["due_at", "number", "id"]
        constraints = [models.UniqueConstraint(fields=["case", "key"], name="dunning_step_key_unique")]
        indexes = [models.Index(fields=["status", "due_at"], name="dunning_step_due_idx")]

    def __str__(self) -> str:
        return f"{self.key} of case {self.case_id} ({self.status})"


class AttemptStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    SHADOWED = "shadowed", "Shadowed (stage does not allow retries yet)"


class DunningAttempt(models.Model):
    """One payment retry (pay the open invoice), sent through the outbox with its own key."""

    case = models.ForeignKey(DunningCase, on_delete=models.PROTECT, related_name="attempts")
    step = models.OneToOneField(DunningStep, on_delete=models.PROTECT, null=True, blank=True, related_name="attempt")
    number = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=10, choices=AttemptStatus.choices, default=AttemptStatus.REQUESTED)
    decline_code = models.CharField(max_length=60, blank=True)
    requested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["requested_at", "id"]
        constraints = [models.UniqueConstraint(fields=["case", "number"], name="dunning_attempt_number_unique")]

    def __str__(self) -> str:
        return f"retry {self.number} of case {self.case_id} ({self.status})"


class MessageChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SHADOWED = "shadowed", "Shadowed (stage does not allow messages yet)"
    SKIPPED = "skipped", "Skipped"
    ACCEPTED = "accepted", "Accepted"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    READ = "read", "Read"
    # The outbox lost track of it while handing it to the provider (the worker stopped before the
    # answer was recorded): it may have reached the member; not sent again unless a manager says so.
    UNCERTAIN = "uncertain", "May have been sent"


# Delivery statuses only move forward (status callbacks arrive unordered and repeated).
MESSAGE_STATUS_RANK = {
    MessageStatus.PENDING: 0, MessageStatus.ACCEPTED: 1, MessageStatus.QUEUED: 2, MessageStatus.SENDING: 3,
    MessageStatus.SENT: 4, MessageStatus.DELIVERED: 5, MessageStatus.UNDELIVERED: 5, MessageStatus.FAILED: 5,
    MessageStatus.READ: 6, MessageStatus.SHADOWED: 9, MessageStatus.SKIPPED: 9, MessageStatus.UNCERTAIN: 0,
}


class DunningMessage(models.Model):
    """A card-update message to the member (the rendered body: first name, practice name, link;
    nothing clinical). Contact data is read from the member at send time, not stored here."""

    case = models.ForeignKey(DunningCase, on_delete=models.PROTECT, related_name="messages")
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, null=True, blank=True, related_name="messages")
    channel = models.CharField(max_length=10, choices=MessageChannel.choices)
    reason = models.CharField(max_length=20, default="schedule", help_text="schedule, manual or fallback")
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    provider_id = models.CharField(max_length=100, blank=True, db_index=True, help_text="Twilio Message SID.")
    error_code = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.channel} message {self.pk} of case {self.case_id} ({self.status})"
