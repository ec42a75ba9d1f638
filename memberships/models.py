"""The membership ledger: who is a member, of which tier, and what they are entitled to.

Balances are caches of the append-only `LedgerEntry` sums, kept by the same transaction and guarded
by database CHECK constraints. State changes happen only in `memberships.services`.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from .validators import validate_time_zone


class AutomationStage(models.TextChoices):
    """The rollout path: each stage turns on everything of the stages before it."""

    OBSERVE = "observe", "Observe (read-only mirror)"
    ALERTS = "alerts", "Alerts (chart flags, staff alerts)"
    DUNNING = "dunning", "Dunning (member messages, payment retries)"
    REDEMPTIONS = "redemptions", "Redemptions (record treatments spend balances)"
    TIER_SYNC = "tier_sync", "Tier sync (changes reach processor and record)"

    @classmethod
    def rank(cls, stage: str) -> int:
        return list(cls.values).index(stage)


class RedemptionWhenPastDue(models.TextChoices):
    ALLOW = "allow", "Allow"
    WARN = "warn", "Allow with a warning"
    BLOCK = "block", "Block"


class Practice(models.Model):
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
    # Which record (EHR) this practice's chart lives in, and its settings (ids, base URL).
    record_adapter = models.CharField(max_length=20, default="builtin")
    record_config = models.JSONField(default=dict, blank=True)
    record_webhook_secret = models.CharField(max_length=128, blank=True)
    quiet_hours_start = models.TimeField(default="21:00")
    quiet_hours_end = models.TimeField(default="08:00")
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

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="members")
    home_location = models.ForeignKey(
        Location, on_delete=models.SET_NULL, null=True, blank=True, related_name="members"
    )
    member_number = models.CharField(max_length=20)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550123")
    sms_consent = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_opted_out_at = models.DateTimeField(null=True, blank=True)
    record_patient_id = models.CharField(max_length=100, blank=True)
    processor_customer_id = models.CharField(max_length=100, blank=True)
    # Lower-cased "first last" for fast prefix search.
    search_name = models.CharField(max_length=201, editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "member_number"], name="member_number_unique"),
        ]
        indexes = [
            models.Index(fields=["practice", "last_name", "first_name"], name="member_name_idx"),
            models.Index(fields=["phone"], name="member_phone_idx"),
            models.Index(fields=["email"], name="member_email_idx"),
            models.Index(fields=["record_patient_id"], name="member_patient_idx"),
            models.Index(fields=["processor_customer_id"], name="member_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_number} {self.first_name} {self.last_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def can_receive_sms(self) -> bool:
        return bool(self.phone) and self.sms_consent and self.sms_opted_out_at is None

    def save(self, *args, **kwargs):
        self.search_name = f"{self.first_name} {self.last_name}".lower().strip()
        if kwargs.get("update_fields") is not None and (
            {"first_name", "last_name"} & set(kwargs["update_fields"])
        ):
            kwargs["update_fields"] = list(set(kwargs["update_fields"]) | {"search_name"})
        super().save(*args, **kwargs)


class ServiceKind(models.TextChoices):
    TREATMENT = "treatment", "Treatment (counted in units)"
    CREDIT = "credit", "Dollar credit (counted in cents)"


class Service(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=120)
    code = models.SlugField(max_length=50)
    kind = models.CharField(max_length=10, choices=ServiceKind.choices, default=ServiceKind.TREATMENT)
    # What one unit is worth at list price, for liability and breakage reports (cents).
    unit_value_cents = models.BigIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "code"], name="service_code_unique"),
            models.CheckConstraint(condition=Q(unit_value_cents__gte=0), name="service_value_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name

    def format_quantity(self, quantity: int) -> str:
        if self.kind == ServiceKind.CREDIT:
            sign = "-" if quantity < 0 else ""
            return f"{sign}${abs(quantity) / 100:,.2f}"
        return f"{quantity}"


class BillingInterval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Tier(models.Model):
    """A priced membership level. Versioned: a price or benefit change makes a new version (same
    `code`, `version` + 1) and existing memberships keep theirs until moved."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="tiers")
    code = models.SlugField(max_length=50)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=120)
    # What the processor (and so the card statement) sees: neutral, nothing clinical.
    processor_name = models.CharField(max_length=120)
    price_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=10, choices=BillingInterval.choices, default=BillingInterval.MONTH)
    processor_price_id = models.CharField(max_length=100, blank=True)
    rank = models.PositiveIntegerField(default=0, help_text="Higher is richer; orders the tier list.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rank", "code", "version"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "code", "version"], name="tier_version_unique"),
            models.CheckConstraint(condition=Q(price_cents__gte=0), name="tier_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})" if self.version > 1 else self.name

    @property
    def price_display(self) -> str:
        return f"${self.price_cents / 100:,.2f}/{self.interval}"


class RolloverRule(models.TextChoices):
    NONE = "none", "Unused expires at the end of the cycle"
    CARRY_OVER = "carry_over", "Carries over, up to a cap"
    EXPIRE_AFTER = "expire_after", "Expires after N cycles"


class TierBenefit(models.Model):
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="benefits")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="benefits")
    quantity_per_cycle = models.PositiveIntegerField(help_text="Units, or cents for a dollar credit.")
    rollover = models.CharField(max_length=20, choices=RolloverRule.choices, default=RolloverRule.NONE)
    rollover_cap = models.PositiveIntegerField(null=True, blank=True, help_text="For carry over.")
    expire_after_cycles = models.PositiveIntegerField(null=True, blank=True, help_text="For expire after N.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tier", "service"], name="benefit_unique"),
            models.CheckConstraint(
                condition=~Q(rollover="carry_over") | Q(rollover_cap__isnull=False),
                name="benefit_carry_over_has_cap",
            ),
            models.CheckConstraint(
                condition=~Q(rollover="expire_after") | Q(expire_after_cycles__gte=1),
                name="benefit_expire_after_has_cycles",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier}: {self.service.format_quantity(self.quantity_per_cycle)} {self.service}"

    def clean(self) -> None:
        super().clean()
        if self.tier_id and self.service_id and self.service.practice_id != self.tier.practice_id:
            raise ValidationError({"service": "Choose one of this practice's services."})

    @property
    def rollover_in_words(self) -> str:
        if self.rollover == RolloverRule.CARRY_OVER:
            return f"carries over, up to {self.service.format_quantity(self.rollover_cap or 0)}"
        if self.rollover == RolloverRule.EXPIRE_AFTER:
            n = self.expire_after_cycles or 1
            return f"expires after {n} cycle{'s' if n != 1 else ''}"
        return "use it or lose it each cycle"


class MembershipStatus(models.TextChoices):
    PENDING = "pending", "Pending first payment"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    PAUSED = "paused", "Paused"
    LAPSED = "lapsed", "Lapsed"
    CANCELLED = "cancelled", "Cancelled"


class Membership(models.Model):
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="memberships")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="memberships")
    status = models.CharField(max_length=12, choices=MembershipStatus.choices, default=MembershipStatus.PENDING)
    started_at = models.DateTimeField()
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cycle_number = models.PositiveIntegerField(default=0, help_text="Refilled cycles so far.")
    last_refill_at = models.DateTimeField(null=True, blank=True)
    paused_until = models.DateField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Until when frozen credit stays usable after a cancellation (the paid period's end).
    paid_through = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    pending_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Tier that takes effect at the next cycle.",
    )
    processor_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One open membership per member: cancelled ones stay as history.
            models.UniqueConstraint(
                fields=["member"], condition=~Q(status="cancelled"), name="one_open_membership_per_member"
            ),
            # A processor subscription is one membership's (one processor per deployment; its ids
            # never collide with another processor's): webhooks find the membership by it.
            models.UniqueConstraint(
                fields=["processor_subscription_id"], condition=~Q(processor_subscription_id=""),
                name="one_membership_per_processor_subscription",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="membership_status_idx")]
        permissions = [
            ("view_chart", "Can view member charts"),
            ("redeem_entitlement", "Can redeem and reverse redemptions"),
            ("manage_membership", "Can enroll, change tier, pause, resume and cancel"),
            ("adjust_balance", "Can adjust balances"),
            ("view_dashboard", "Can view the manager pages and dashboard"),
        ]

    def __str__(self) -> str:
        return f"{self.member} — {self.tier} ({self.status})"


class ActorType(models.TextChoices):
    STAFF = "staff", "Staff"
    PROCESSOR = "processor", "Processor"
    RECORD = "record", "Record"
    SYSTEM = "system", "System"
    IMPORT = "import", "Import"


class LotSource(models.TextChoices):
    PAID = "paid", "Paid (cycle refill)"
    PROMO = "promo", "Promotional"
    IMPORT = "import", "Opening balance (import)"
    ADJUST = "adjust", "Manager adjustment"


class CreditLot(models.Model):
    """A grant of units or cents from one source and cycle. Redemptions consume the oldest unexpired
    lot first; the rollover rule expires lots at the cycle boundary. `remaining` is a cache of the
    entries that touch the lot."""

    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="lots")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10, choices=LotSource.choices)
    cycle_number = models.PositiveIntegerField(default=0)
    granted = models.BigIntegerField()
    remaining = models.BigIntegerField()
    # The lot expires at the boundary into this cycle number (None: never by cycle).
    expires_at_cycle = models.PositiveIntegerField(null=True, blank=True)
    # The billing period a paid lot was granted for (its invoice's subscription line), so a renewal
    # that arrives after a newer one slots in at its own cycle.
    period_start = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(remaining__gte=0), name="lot_remaining_gte_0"),
            models.CheckConstraint(condition=Q(remaining__lte=F("granted")), name="lot_remaining_lte_granted"),
        ]
        indexes = [models.Index(fields=["membership", "service", "remaining"], name="lot_open_idx")]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining}/{self.granted} {self.service}"


class EntitlementBalance(models.Model):
    """balance == sum of the ledger entries for (membership, service); `reserved` are units on hold
    for booked appointments (not available to anyone else). Both are kept in SQL, never
    read-modify-write in Python."""

    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="balances")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    balance = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    frozen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["membership", "service"], name="balance_unique"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="balance_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="reserved_gte_0"),
            models.CheckConstraint(condition=Q(reserved__lte=F("balance")), name="reserved_lte_balance"),
        ]

    def __str__(self) -> str:
        return f"{self.membership_id}/{self.service}: {self.balance} ({self.reserved} reserved)"

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant (cycle refill)"
    REDEEM = "redeem", "Redeem"
    REVERSE = "reverse", "Reverse"
    EXPIRE = "expire", "Expire"
    ROLLOVER = "rollover", "Rollover"
    ADJUST = "adjust", "Adjust"
    FREEZE = "freeze", "Freeze"
    OPENING = "opening", "Opening balance"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} is append-only")

    def delete(self):
        raise TypeError(f"{self.model.__name__} is append-only")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} is append-only")


class LedgerEntry(AppendOnlyModel):
    # No index of its own: `entry_balance_idx` (membership, service, created_at) serves it, and every
    # redemption writes an entry.
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="entries", db_index=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=EntryKind.choices)
    source = models.CharField(max_length=10, choices=LotSource.choices, blank=True)
    # Signed change to the balance: + grants, - redemptions and expiries. A freeze is 0 with the
    # frozen amount in `frozen_quantity`.
    quantity = models.BigIntegerField()
    frozen_quantity = models.BigIntegerField(default=0)
    balance_after = models.BigIntegerField()
    lot = models.ForeignKey(CreditLot, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    cycle_key = models.CharField(max_length=120, blank=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=300)
    dispute = models.BooleanField(default=False, help_text="A reversal because the member disputed it.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["membership", "service", "created_at"], name="entry_balance_idx"),
            models.Index(fields=["kind", "created_at"], name="entry_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.quantity:+d} {self.service} ({self.idempotency_key})"


class LotMovement(AppendOnlyModel):
    """Which lots an entry drew on (a redemption can span several lots, oldest first)."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="movements")
    lot = models.ForeignKey(CreditLot, on_delete=models.PROTECT, related_name="movements")
    quantity = models.BigIntegerField()


class ReservationStatus(models.TextChoices):
    HELD = "held", "Held"
    COMMITTED = "committed", "Committed"
    RELEASED = "released", "Released"


class Reservation(models.Model):
    membership = models.ForeignKey(Membership, on_delete=models.PROTECT, related_name="reservations")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=ReservationStatus.choices, default=ReservationStatus.HELD)
    idempotency_key = models.CharField(max_length=200, unique=True)
    external_ref = models.CharField(max_length=200, blank=True, help_text="Appointment id in the record.")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"hold {self.quantity} {self.service} ({self.status})"


class Operation(models.Model):
    """One row per idempotent service call: replaying the key returns what the first call made."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=50)
    result_model = models.CharField(max_length=50)
    result_id = models.BigIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} {self.idempotency_key}"


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


class AuditLog(AppendOnlyModel):
    """Every staff read of a chart and every change: who, what, when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=60, blank=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["member", "-created_at"], name="audit_member_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.object_type}:{self.object_id}"


class StaffProfile(models.Model):
    """Which practice a staff user works for (roles are Django groups)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="staff")

    def __str__(self) -> str:
        return f"{self.user} @ {self.practice}"
