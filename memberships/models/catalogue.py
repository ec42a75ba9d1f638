"""What a practice sells: services (treatments counted in units, dollar credits in cents) and
versioned tiers with their benefits and rollover rules."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .practice import Practice


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


# Treatment words that never belong on a card statement, besides the practice's own treatments.
CLINICAL_WORDS = ("botox", "dysport", "xeomin", "jeuveau", "daxxify", "neurotoxin", "tox", "filler", "juvederm",
                  "restylane", "sculptra", "kybella", "hydrafacial", "microneedling", "laser", "ipl", "prp",
                  "coolsculpting", "semaglutide", "tirzepatide", "ozempic", "wegovy", "chemical peel", "injectable")


def _words(text: str) -> str:
    return " " + " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split()) + " "


def clinical_terms_in(name: str, *, practice_id: int | None) -> list[str]:
    """The treatment names (the practice's treatments, and CLINICAL_WORDS) that `name` carries, as
    words or run together ("Hydra Facial", "HYDRAFACIAL")."""
    terms = list(CLINICAL_WORDS)
    if practice_id is not None:
        for service_name, code in Service.objects.filter(practice_id=practice_id, kind=ServiceKind.TREATMENT) \
                .values_list("name", "code"):
            terms += [service_name, code]
    spaced, packed = _words(name), _words(name).replace(" ", "")
    found = []
    for term in terms:
        words = _words(term)
        run_together = words.replace(" ", "")
        if words.strip() and (words in spaced or (len(run_together) >= 5 and run_together in packed)):
            found.append(term)
    return sorted(set(found), key=str.lower)


class BillingInterval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class RedeemableAt(models.TextChoices):
    """Where a member of the tier may spend its benefits."""

    GROUP = "group", "Any location of the group"
    HOME = "home", "Only at the member's home location"


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
    offered_online = models.BooleanField(default=False, help_text="Listed on the practice's join page (/join/…).")
    redeemable_at = models.CharField(max_length=10, choices=RedeemableAt.choices, default=RedeemableAt.GROUP,
                                     help_text="Where members of this tier may use their benefits.")
    # The group's catalogue: a shared tier is copied into every other practice of the organization
    # as that practice's own versioned tier (`copied_from` names the version it copies).
    shared_with_group = models.BooleanField(
        default=False, help_text="Offered by every practice of the group: the 'Share with the group' action "
                                 "copies this version into each of them.")
    copied_from = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="copies",
                                    help_text="The group tier version this one copies.")
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

    def clean(self):
        """The processor name is on the member's card statement and receipts: no treatment names."""
        found = clinical_terms_in(self.processor_name or "", practice_id=self.practice_id)
        if found:
            raise ValidationError({"processor_name": (
                f"The processor name appears on card statements and receipts: leave out treatment names "
                f"({', '.join(found)}). Use something neutral, e.g. \"Membership — Tier B\".")})


class TierLocationPrice(models.Model):
    """A location's own price for a tier version (one catalogue, prices per location): a member whose
    home location has one pays it from their enrollment or next tier change. Part of the version:
    a new price is a new tier version, as for the tier's own price."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="location_prices")
    location = models.ForeignKey("memberships.Location", on_delete=models.PROTECT, related_name="tier_prices")
    price_cents = models.BigIntegerField()
    processor_price_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tier_id", "location_id"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "location"], name="tier_location_price_unique"),
            models.CheckConstraint(condition=Q(price_cents__gte=0), name="tier_location_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.tier} at {self.location}: ${self.price_cents / 100:,.2f}"

    def clean(self) -> None:
        super().clean()
        if self.tier_id and self.location_id and self.location.practice_id != self.tier.practice_id:
            raise ValidationError({"location": "Choose one of this tier's practice's locations."})


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
