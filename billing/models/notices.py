"""Member notices: "your membership renews on Jan 3 for $199.00" before each renewal, and "you have
membership benefits that expire on Jan 3" before a cycle boundary that would expire unused credit.
One row per (membership, kind, boundary date) — the database's unique constraint is the
exactly-once guard — with what each channel did and, for an expiring-credit notice, what the dry
run said would expire (so the dashboard can tell how much of it was used in time). State changes
happen only in `billing.notices`."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

DEFAULT_NOTICE_DAYS = 7


class NoticeSettings(models.Model):
    """A practice's notice timing; a practice without a row uses the defaults (7 days each). Notices
    go only from the `notices` automation stage on (the rollout page)."""

    practice = models.OneToOneField("memberships.Practice", on_delete=models.PROTECT, related_name="notice_settings")
    upcoming_charge_days = models.PositiveSmallIntegerField(
        default=DEFAULT_NOTICE_DAYS, validators=[MinValueValidator(1), MaxValueValidator(30)],
        help_text="Days before each renewal that the member is told the amount and the date.")
    expiring_credit_days = models.PositiveSmallIntegerField(
        default=DEFAULT_NOTICE_DAYS, validators=[MinValueValidator(1), MaxValueValidator(30)],
        help_text="Days before a cycle boundary that a member with unused benefits about to expire is told.")

    class Meta:
        verbose_name = "notice settings"
        verbose_name_plural = "notice settings"

    def __str__(self) -> str:
        return f"Notice settings of {self.practice}"


class NoticeKind(models.TextChoices):
    UPCOMING_CHARGE = "upcoming_charge", "Upcoming charge"
    EXPIRING_CREDIT = "expiring_credit", "Expiring credit"


class NoticeStatus(models.TextChoices):
    QUEUED = "queued", "Queued"          # handed to the outbox; a channel may still wait (quiet hours)
    SENT = "sent", "Sent"                # at least one channel went
    SKIPPED = "skipped", "Skipped"       # no channel could go (see `note`)
    UNCERTAIN = "uncertain", "May have been sent"   # none went for sure; one may have (see `note`)
    # It no longer applied when it was to go (see `note`); planned again if it applies again before
    # the renewal.
    WITHDRAWN = "withdrawn", "Withdrawn"


class ChannelStatus(models.TextChoices):
    NONE = "", "Not used"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    # The sending stopped before the provider's answer was recorded (see `integrations.outbox`).
    UNCERTAIN = "uncertain", "May have been sent"


class MemberNotice(models.Model):
    practice = models.ForeignKey("memberships.Practice", on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey("memberships.Member", on_delete=models.PROTECT, related_name="notices",
                               db_index=False)
    membership = models.ForeignKey("memberships.Membership", on_delete=models.PROTECT, related_name="notices",
                                   db_index=False)
    kind = models.CharField(max_length=20, choices=NoticeKind.choices)
    # The renewal (the membership's current period end) the notice is about: its date in the
    # member's zone is the exactly-once key; the moment is kept for the dashboard's "before expiry".
    boundary_date = models.DateField()
    boundary_at = models.DateTimeField()
    amount_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    # What the dry run said would expire at the boundary: {service id: quantity}.
    nudged = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=NoticeStatus.choices, default=NoticeStatus.QUEUED)
    email_status = models.CharField(max_length=10, choices=ChannelStatus.choices, blank=True)
    sms_status = models.CharField(max_length=10, choices=ChannelStatus.choices, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["membership", "kind", "boundary_date"], name="notice_once_per_boundary"),
        ]
        indexes = [
            models.Index(fields=["practice", "kind", "boundary_at"], name="notice_practice_kind_idx"),
            models.Index(fields=["member", "-created_at"], name="notice_member_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} notice {self.pk} (membership {self.membership_id}, {self.boundary_date})"
