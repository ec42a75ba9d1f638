"""The append-only ledger: entries (who, why, under which idempotency key), the lots an entry drew
on, and holds on units for booked appointments."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .append_only import AppendOnlyModel
from .catalogue import Service
from .membership import CreditLot, LotSource, Membership


class ActorType(models.TextChoices):
    STAFF = "staff", "Staff"
    PROCESSOR = "processor", "Processor"
    RECORD = "record", "Record"
    SYSTEM = "system", "System"
    IMPORT = "import", "Import"
    MEMBER = "member", "Member (own page)"


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant (cycle refill)"
    REDEEM = "redeem", "Redeem"
    REVERSE = "reverse", "Reverse"
    EXPIRE = "expire", "Expire"
    ROLLOVER = "rollover", "Rollover"
    ADJUST = "adjust", "Adjust"
    FREEZE = "freeze", "Freeze"
    OPENING = "opening", "Opening balance"


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
    # Where it happened (the clinic of the staff member or record that wrote it); empty for the
    # system's own entries (refills, expiries) and for entries from before locations were recorded.
    location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", db_index=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "ledger entries"
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
    location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", db_index=False)
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"hold {self.quantity} {self.service} ({self.status})"
