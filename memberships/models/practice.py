"""The group (an organization of practices), the practice (one medspa: its time zone, policies, record
and automation stage) and its locations (the clinics where members are seen)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import models

from memberships.fields import EncryptedTextField, SecretJSONField
from memberships.validators import validate_time_zone


class AutomationStage(models.TextChoices):
    """The rollout path: each stage turns on everything of the stages before it."""

    OBSERVE = "observe", "Observe (read-only mirror)"
    ALERTS = "alerts", "Alerts (chart flags, staff alerts)"
    DUNNING = "dunning", "Dunning (member messages, payment retries)"
    REDEMPTIONS = "redemptions", "Redemptions (record treatments spend balances)"
    TIER_SYNC = "tier_sync", "Tier sync (changes reach processor and record)"
    # Last, so a practice that already runs tier sync starts sending notices only when a manager
    # moves it here on purpose.
    NOTICES = "notices", "Notices (upcoming charge, expiring credit)"

    @classmethod
    def rank(cls, stage: str) -> int:
        return list(cls.values).index(stage)


class RedemptionWhenPastDue(models.TextChoices):
    ALLOW = "allow", "Allow"
    WARN = "warn", "Allow with a warning"
    BLOCK = "block", "Block"


class Processor(models.TextChoices):
    """The card processor that bills this practice's memberships."""

    STRIPE = "stripe", "Stripe"
    SQUARE = "square", "Square"


class Organization(models.Model):
    """A group of practices under one owner: its group managers see and manage every practice of it,
    and a tier may let members redeem at any location of the group."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Practice(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="practices",
                                     help_text="The group this practice belongs to; empty: on its own.")
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    timezone = models.CharField(max_length=64, default="America/Los_Angeles", validators=[validate_time_zone],
                                help_text="IANA time zone name, e.g. America/Los_Angeles.")
    currency = models.CharField(max_length=3, default="usd")
    automation_stage = models.CharField(
        max_length=20, choices=AutomationStage.choices, default=AutomationStage.OBSERVE
    )
    # Cancellation freezes balances; this says whether frozen credit may still be used until the
    # end of the period the member already paid for.
    frozen_credit_usable_until_period_end = models.BooleanField(default=True)
    redemption_when_past_due = models.CharField(
        max_length=10, choices=RedemptionWhenPastDue.choices, default=RedemptionWhenPastDue.WARN
    )
    # Which record (EHR) this practice's chart lives in, and its settings (ids, base URL); the
    # credentials in it (api_key, token…) and the webhook secret are encrypted at rest.
    record_adapter = models.CharField(max_length=20, default="builtin")
    processor = models.CharField(max_length=10, choices=Processor.choices, default=Processor.STRIPE,
                                 help_text="The card processor that bills this practice's memberships.")
    record_config = SecretJSONField(default=dict, blank=True)
    record_webhook_secret = EncryptedTextField(blank=True)
    quiet_hours_start = models.TimeField(default="21:00")
    quiet_hours_end = models.TimeField(default="08:00")
    # A member's pause (up to `member_pause_max_days`) or end-of-period cancellation from their own
    # page goes through at once instead of waiting in the staff queue "Member requests".
    member_requests_self_serve = models.BooleanField(default=False)
    member_pause_max_days = models.PositiveSmallIntegerField(default=90)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def stage_at_least(self, stage: str) -> bool:
        return AutomationStage.rank(self.automation_stage) >= AutomationStage.rank(stage)

    @property
    def zone(self) -> ZoneInfo:
        """The practice's time zone (the site's when the stored name is not a known zone)."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(settings.TIME_ZONE)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()


class Location(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="locations")
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone],
                                help_text="IANA time zone name; empty: the practice's.")
    # A location may run behind the rest of its practice on the rollout path (a clinic that just
    # joined the group observes while the others sync tiers) or ahead of it (a clinic piloting the
    # next stage); empty: the practice's stage. Read through `memberships.services.stages`.
    automation_stage = models.CharField(max_length=20, choices=AutomationStage.choices, blank=True,
                                        help_text="Empty: the practice's stage.")
    # A group may run more than one record (EHR): empty adapter means the practice's.
    record_adapter = models.CharField(max_length=20, blank=True, help_text="Empty: the practice's record.")
    record_config = SecretJSONField(default=dict, blank=True)
    # A location that runs its own record verifies that record's webhooks (and signs what it sends
    # there) with a secret of its own, never the practice's; without one its webhooks are refused.
    record_webhook_secret = EncryptedTextField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["practice_id", "name", "id"]

    def __str__(self) -> str:
        return self.name
