"""A member's membership of a tier, the credit lots its cycles grant, and the balances that cache
the ledger per (membership, service), guarded by database CHECK constraints and moved only in SQL."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from .catalogue import Service, Tier
from .members import Member


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
    # The clinic where it was sold (the front desk's location; empty online and for older rows).
    enrolled_location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, null=True,
                                          blank=True, related_name="+", db_index=False)
    # Whose price it pays: the home location's, when that location has its own price for the tier
    # (fixed at enrollment and at each tier change; moving home does not change it). Empty: the tier's.
    price_location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="+", db_index=False)
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
            ("view_group_dashboard", "Can view every practice of the group and the group dashboard"),
        ]

    def __str__(self) -> str:
        return f"{self.member} — {self.tier} ({self.status})"


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
