"""What members' credit is worth: redeemed per service, still owed (liability), expired (breakage)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, F, Sum

from memberships.models import EntitlementBalance, EntryKind, LedgerEntry, Service, ServiceKind

from .months import aware, for_practice, month_key, month_starts


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
class Breakage:
    months: list[date]
    cents: list[int]

    @property
    def total_cents(self) -> int:
        return sum(self.cents)


def breakage_by_month(*, practice_id: int | None, now: datetime, months: int = 12) -> Breakage:
    """Value of expired credit (EXPIRE entries × unit value), net of reversed expiries, by month."""
    starts = month_starts(now=now, months=months)
    index = {s: i for i, s in enumerate(starts)}
    cents = [0] * len(starts)
    entries = for_practice(LedgerEntry.objects.filter(kind=EntryKind.EXPIRE, created_at__gte=aware(starts[0]),
                                                      created_at__lte=now),
                           practice_id, "membership__member__practice_id")
    entries = entries.filter(reversed_by__isnull=True)
    for row in entries.values("created_at", "quantity", "service__unit_value_cents"):
        i = index.get(month_key(row["created_at"]))
        if i is not None:
            cents[i] += -row["quantity"] * row["service__unit_value_cents"]
    return Breakage(months=starts, cents=cents)
