"""What members' credit is worth: redeemed per service, still owed (liability), expired (breakage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from django.db.models import Count, Exists, F, OuterRef, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from memberships.models import EntitlementBalance, EntryKind, LedgerEntry, Service, ServiceKind

from .months import aware, for_practice, month_starts


@dataclass
class ServiceAmount:
    service_id: int
    name: str
    kind: str
    quantity: int
    value_cents: int
    count: int = 0

    @property
    def quantity_display(self) -> str:
        if self.kind == ServiceKind.CREDIT:
            return f"${self.quantity / 100:,.2f}"
        return f"{self.quantity:,}"


def _services(practice_id: int | None) -> dict[int, Service]:
    return {s.pk: s for s in for_practice(Service.objects.all(), practice_id, "practice_id")}


def redemptions_per_service(*, practice_id: int | None, now: datetime, days: int = 90) -> list[ServiceAmount]:
    """Net redemptions (redeemed minus reversed) per service over the last `days` days."""
    since = now - timedelta(days=days)
    entries = for_practice(LedgerEntry.objects.filter(created_at__gte=since, created_at__lte=now),
                           practice_id, "membership__member__practice_id")
    redeemed = {r["service_id"]: r for r in entries.filter(kind=EntryKind.REDEEM).values("service_id")
                .annotate(q=Sum("quantity"), n=Count("id")).order_by()}
    reversed_ = {r["service_id"]: r["q"] for r in entries.filter(kind=EntryKind.REVERSE, reverses__kind=EntryKind.REDEEM)
                 .values("service_id").annotate(q=Sum("quantity")).order_by()}
    services = _services(practice_id)
    out = []
    for service_id, row in redeemed.items():
        service = services.get(service_id)
        if service is None:
            continue
        quantity = -(row["q"] or 0) - (reversed_.get(service_id) or 0)
        out.append(ServiceAmount(service_id=service_id, name=service.name, kind=service.kind, quantity=quantity,
                                 value_cents=quantity * service.unit_value_cents, count=row["n"]))
    return sorted(out, key=lambda s: -s.value_cents)


@dataclass
class Liability:
    services: list[ServiceAmount]
    frozen_cents: int

    @property
    def total_cents(self) -> int:
        return sum(s.value_cents for s in self.services)


def credit_liability(*, practice_id: int | None) -> Liability:
    """Unredeemed credit: balances × the service's unit value (list price), per service; frozen
    balances of cancelled memberships shown apart (they are owed only until the paid period ends)."""
    balances = for_practice(EntitlementBalance.objects.filter(balance__gt=0), practice_id,
                            "membership__member__practice_id")
    services = _services(practice_id)
    out = []
    for row in (balances.filter(frozen_at__isnull=True).values("service_id")
                .annotate(q=Sum("balance")).order_by()):
        service = services.get(row["service_id"])
        if service is not None:
            out.append(ServiceAmount(service_id=service.pk, name=service.name, kind=service.kind, quantity=row["q"],
                                     value_cents=row["q"] * service.unit_value_cents))
    frozen = balances.filter(frozen_at__isnull=False).aggregate(
        v=Sum(F("balance") * F("service__unit_value_cents")))["v"] or 0
    return Liability(services=sorted(out, key=lambda s: -s.value_cents), frozen_cents=frozen)


@dataclass
class BreakageService:
    """One service's expired quantity in each month of the series (units; cents for a credit)."""

    service_id: int
    name: str
    kind: str
    unit_value_cents: int
    quantities: list[int]

    def display(self, quantity: int) -> str:
        return f"${quantity / 100:,.2f}" if self.kind == ServiceKind.CREDIT else f"{quantity:,}"


@dataclass(frozen=True)
class BreakageMonth:
    month: date
    cents: int
    quantities: list[str]      # per service of `Breakage.services`, in its words ("2", "$50.00"), "" for none


@dataclass
class Breakage:
    months: list[date]
    cents: list[int]
    services: list[BreakageService] = field(default_factory=list)
    zone_name: str = ""

    @property
    def total_cents(self) -> int:
        return sum(self.cents)

    @property
    def rows(self) -> list[BreakageMonth]:
        """The table's rows, newest month first."""
        return [BreakageMonth(month=m, cents=c, quantities=[s.display(s.quantities[i]) if s.quantities[i] else ""
                                                             for s in self.services])
                for i, (m, c) in reversed(list(enumerate(zip(self.months, self.cents))))]


def breakage_by_month(*, practice_id: int | None, now: datetime, months: int = 12,
                      zone: tzinfo | None = None) -> Breakage:
    """Value of expired credit (EXPIRE entries × the service's unit value), net of reversed expiries,
    by calendar month in `zone` (the practice's; the site's by default), with each service's expired
    units. One query, grouped by month and service in the database, whatever the number of members."""
    zone = zone or timezone.get_default_timezone()
    with timezone.override(zone):
        starts = month_starts(now=now, months=months)
        since = aware(starts[0])
    index = {s: i for i, s in enumerate(starts)}
    entries = for_practice(LedgerEntry.objects.filter(kind=EntryKind.EXPIRE, created_at__gte=since,
                                                      created_at__lte=now).filter(_not_reversed()),
                           practice_id, "membership__member__practice_id")
    grouped = (entries.annotate(month=TruncMonth("created_at", tzinfo=zone))
               .values("month", "service_id", "service__name", "service__kind", "service__unit_value_cents")
               .annotate(q=Sum("quantity")).order_by())
    cents = [0] * len(starts)
    services: dict[int, BreakageService] = {}
    for row in grouped:
        i = index.get(_month_of(row["month"], zone))
        if i is None:
            continue
        service = services.setdefault(row["service_id"], BreakageService(
            service_id=row["service_id"], name=row["service__name"], kind=row["service__kind"],
            unit_value_cents=row["service__unit_value_cents"], quantities=[0] * len(starts)))
        service.quantities[i] += -row["q"]
        cents[i] += -row["q"] * row["service__unit_value_cents"]
    ordered = sorted(services.values(), key=lambda s: (-sum(s.quantities) * s.unit_value_cents, s.name))
    return Breakage(months=starts, cents=cents, services=ordered, zone_name=str(zone))


def _not_reversed():
    """An entry no reversal names: NOT EXISTS, which PostgreSQL plans as an anti-join with the right
    estimate (the LEFT JOIN … IS NULL of `reversed_by__isnull` was estimated at one row and walked
    the expiries one by one through nested loops)."""
    return ~Exists(LedgerEntry.objects.filter(reverses=OuterRef("pk")))


def _month_of(moment, zone: tzinfo) -> date:
    """The first day of the month a truncated moment stands for (the database hands it back aware, or
    naive in `zone`)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(zone) if timezone.is_aware(moment) else moment
        return moment.date().replace(day=1)
    return moment.replace(day=1)
