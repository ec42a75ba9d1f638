"""Aggregates for the manager dashboard (and anyone else who needs them): members and MRR by tier
over time, failed vs recovered dollars, redemptions per service, credit liability, breakage and the
payback metrics. Reads only; every function takes `now` and an optional practice id (None: all).

Everything is derived from the ledger (memberships, entries, balances) and the timeline (Events);
the processor's invoices are not needed, so the numbers hold before the processor is connected."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from memberships.models import (
    BillingInterval,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    Membership,
    MembershipStatus,
    Service,
    ServiceKind,
    Tier,
)


def _practice(qs, practice_id: int | None, path: str):
    return qs.filter(**{path: practice_id}) if practice_id is not None else qs


def month_starts(*, now: datetime, months: int) -> list[date]:
    """The first day of each of the last `months` months, oldest first, ending with this month."""
    today = timezone.localtime(now).date().replace(day=1)
    out = []
    y, m = today.year, today.month
    for _ in range(months):
        out.append(date(y, m, 1))
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return out[::-1]


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _aware(d: date) -> datetime:
    return timezone.make_aware(datetime(d.year, d.month, d.day))


def _month_key(dt: datetime) -> date:
    return timezone.localtime(dt).date().replace(day=1)


def monthly_price_cents(tier: Tier) -> int:
    return tier.price_cents // 12 if tier.interval == BillingInterval.YEAR else tier.price_cents


@dataclass
class TierSeries:
    tier_id: int
    name: str
    members: list[int]
    mrr_cents: list[int]


@dataclass
class MembersOverTime:
    months: list[date]
    tiers: list[TierSeries]

    @property
    def total_members(self) -> list[int]:
        return [sum(t.members[i] for t in self.tiers) for i in range(len(self.months))]

    @property
    def total_mrr_cents(self) -> list[int]:
        return [sum(t.mrr_cents[i] for t in self.tiers) for i in range(len(self.months))]


def members_by_tier_over_time(*, practice_id: int | None, now: datetime, months: int = 12) -> MembersOverTime:
    """Members counted at each month's end (this month: now) and the monthly recurring revenue their
    tiers' prices make. A membership counts from its start until it is cancelled, except one still
    pending its first payment; for the current month its real status decides (active or past due).
    Tier changes are replayed from the TIER_CHANGED events, so a member counts under the tier they
    had then. Pauses in past months are not replayed (a paused member counts only this month as not
    active). One grouped query per the membership table, one for the tier changes."""
    starts = month_starts(now=now, months=months)
    ends = [min(_aware(_next_month(s)), now) for s in starts]
    memberships = _practice(Membership.objects.all(), practice_id, "member__practice_id")
    memberships = memberships.exclude(status=MembershipStatus.PENDING)
    aggregates = {}
    for i, end in enumerate(ends):
        alive = Q(started_at__lte=end) & (Q(cancelled_at__isnull=True) | Q(cancelled_at__gt=end))
        if i == len(ends) - 1:
            alive &= Q(status__in=[MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE])
        aggregates[f"m{i}"] = Count("id", filter=alive)
    counts: dict[int, list[int]] = {}
    for row in memberships.values("tier_id").annotate(**aggregates).order_by():
        counts[row["tier_id"]] = [row[f"m{i}"] for i in range(len(ends))]
    # Replay tier changes: before a change the member was on the old tier.
    changes = _practice(Event.objects.filter(kind=EventKind.TIER_CHANGED, created_at__gt=_aware(starts[0])),
                        practice_id, "practice_id")
    changes = list(changes.values("membership_id", "created_at", "payload"))
    if changes:
        spans = {m["id"]: m for m in Membership.objects.filter(pk__in={c["membership_id"] for c in changes})
                 .values("id", "started_at", "cancelled_at", "status")}
        for change in changes:
            old, new = change["payload"].get("old_tier_id"), change["payload"].get("new_tier_id")
            span = spans.get(change["membership_id"])
            if not old or not new or span is None or span["status"] == MembershipStatus.PENDING:
                continue
            for i, end in enumerate(ends):
                alive = span["started_at"] <= end and (span["cancelled_at"] is None or span["cancelled_at"] > end)
                if end < change["created_at"] and alive and i < len(ends) - 1:
                    counts.setdefault(new, [0] * len(ends))[i] -= 1
                    counts.setdefault(old, [0] * len(ends))[i] += 1
    tiers = {t.pk: t for t in Tier.objects.filter(pk__in=counts.keys())}
    series = []
    for tier_id, members in sorted(counts.items(), key=lambda kv: (tiers[kv[0]].rank, tiers[kv[0]].name)):
        if not any(members):
            continue
        price = monthly_price_cents(tiers[tier_id])
        series.append(TierSeries(tier_id=tier_id, name=str(tiers[tier_id]), members=[max(n, 0) for n in members],
                                 mrr_cents=[max(n, 0) * price for n in members]))
    return MembersOverTime(months=starts, tiers=series)


@dataclass
class FailedRecovered:
    months: list[date]
    failed_cents: list[int]
    recovered_cents: list[int]
    failed_count: int
    recovered_count: int
    open_count: int
    open_cents: int


def failed_vs_recovered(*, practice_id: int | None, now: datetime, months: int = 12) -> FailedRecovered:
    """Dollars of failed charges by the month they first failed, and of those recovered by the month
    they were recovered. One failed invoice counts once however many attempts failed (payload
    `invoice_ref`, `amount_cents` of PAYMENT_FAILED events); a RECOVERED event names the invoice."""
    starts = month_starts(now=now, months=months)
    index = {s: i for i, s in enumerate(starts)}
    failed = [0] * len(starts)
    recovered = [0] * len(starts)
    events = _practice(Event.objects.filter(
        kind__in=[EventKind.PAYMENT_FAILED, EventKind.PAYMENT_ACTION_REQUIRED, EventKind.RECOVERED],
        created_at__gte=_aware(starts[0]) - timedelta(days=62), created_at__lte=now,
    ), practice_id, "practice_id").order_by("created_at", "id").values("kind", "membership_id", "created_at", "payload")
    amounts: dict[str, int] = {}
    open_refs: dict[int, set[str]] = defaultdict(set)
    recovered_refs: set[str] = set()
    for event in events:
        payload = event["payload"] or {}
        ref = payload.get("invoice_ref") or f"membership:{event['membership_id']}"
        if event["kind"] == EventKind.RECOVERED:
            refs = {ref} if ref in amounts else set(open_refs[event["membership_id"]])
            for r in refs:
                if r in recovered_refs:
                    continue
                recovered_refs.add(r)
                i = index.get(_month_key(event["created_at"]))
                if i is not None:
                    recovered[i] += amounts.get(r, 0)
            open_refs[event["membership_id"]] -= refs
            continue
        if ref in amounts:
            continue  # a later attempt of the same invoice
        amounts[ref] = int(payload.get("amount_cents") or 0)
        open_refs[event["membership_id"]].add(ref)
        i = index.get(_month_key(event["created_at"]))
        if i is not None:
            failed[i] += amounts[ref]
    still_open = {r for refs in open_refs.values() for r in refs}
    return FailedRecovered(months=starts, failed_cents=failed, recovered_cents=recovered,
                           failed_count=len(amounts), recovered_count=len(recovered_refs),
                           open_count=len(still_open), open_cents=sum(amounts[r] for r in still_open))


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
    return {s.pk: s for s in _practice(Service.objects.all(), practice_id, "practice_id")}


def redemptions_per_service(*, practice_id: int | None, now: datetime, days: int = 90) -> list[ServiceAmount]:
    """Net redemptions (redeemed minus reversed) per service over the last `days` days."""
    since = now - timedelta(days=days)
    entries = _practice(LedgerEntry.objects.filter(created_at__gte=since, created_at__lte=now),
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
    balances = _practice(EntitlementBalance.objects.filter(balance__gt=0), practice_id,
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
    entries = _practice(LedgerEntry.objects.filter(kind=EntryKind.EXPIRE, created_at__gte=_aware(starts[0]),
                                                   created_at__lte=now),
                        practice_id, "membership__member__practice_id")
    entries = entries.filter(reversed_by__isnull=True)
    for row in entries.values("created_at", "quantity", "service__unit_value_cents"):
        i = index.get(_month_key(row["created_at"]))
        if i is not None:
            cents[i] += -row["quantity"] * row["service__unit_value_cents"]
    return Breakage(months=starts, cents=cents)


@dataclass
class Payback:
    failed_payments: int
    failed_payments_recovered: int
    failed_payments_open: int
    recovered_cents: int
    disputes: int
    disputed_cents: int
    tier_change_billing_errors: int
    tier_change_charges_checked: int
    notes: list[str] = field(default_factory=list)


def payback_metrics(*, practice_id: int | None, now: datetime, months: int = 12) -> Payback:
    """What the ledger pays back: failed payments addressed (recovered vs still open), entitlement
    disputes (reversals marked dispute=True) and tier-change billing errors (a charge after a tier
    change that does not match the new tier's price; the first charge after an immediate change may
    be prorated and is not judged)."""
    fr = failed_vs_recovered(practice_id=practice_id, now=now, months=months)
    since = _aware(month_starts(now=now, months=months)[0])
    disputes = _practice(LedgerEntry.objects.filter(kind=EntryKind.REVERSE, dispute=True, created_at__gte=since),
                         practice_id, "membership__member__practice_id")
    d = disputes.aggregate(n=Count("id"), v=Sum(F("quantity") * F("service__unit_value_cents")))
    errors, checked = _tier_change_billing_errors(practice_id=practice_id, since=since, now=now)
    return Payback(
        failed_payments=fr.failed_count, failed_payments_recovered=fr.recovered_count,
        failed_payments_open=fr.open_count, recovered_cents=sum(fr.recovered_cents),
        disputes=d["n"] or 0, disputed_cents=d["v"] or 0,
        tier_change_billing_errors=errors, tier_change_charges_checked=checked,
    )


def _tier_change_billing_errors(*, practice_id: int | None, since: datetime, now: datetime) -> tuple[int, int]:
    changes = _practice(Event.objects.filter(kind=EventKind.TIER_CHANGED, created_at__gte=since, created_at__lte=now),
                        practice_id, "practice_id")
    changes = list(changes.order_by("created_at", "id").values("membership_id", "created_at", "payload"))
    if not changes:
        return 0, 0
    charges = (Event.objects.filter(kind=EventKind.CHARGE_SUCCEEDED, membership_id__in={c["membership_id"] for c in changes},
                                    created_at__gte=changes[0]["created_at"], created_at__lte=now)
               .order_by("created_at", "id").values("membership_id", "created_at", "payload"))
    prices = dict(Tier.objects.filter(pk__in={c["payload"].get("new_tier_id") for c in changes}).values_list(
        "pk", "price_cents"))
    by_membership = defaultdict(list)
    for change in changes:
        by_membership[change["membership_id"]].append(change)
    errors = checked = 0
    first_after_now_change: set[tuple[int, datetime]] = set()
    for charge in charges:
        before = [c for c in by_membership[charge["membership_id"]] if c["created_at"] <= charge["created_at"]]
        if not before:
            continue
        latest = before[-1]
        if latest["payload"].get("effective") == "now":
            key = (charge["membership_id"], latest["created_at"])
            if key not in first_after_now_change:
                first_after_now_change.add(key)
                continue  # may be prorated
        expected = prices.get(latest["payload"].get("new_tier_id"))
        amount = (charge["payload"] or {}).get("amount_cents")
        if expected is None or amount is None:
            continue
        checked += 1
        if int(amount) != expected:
            errors += 1
    return errors, checked


@dataclass
class Dashboard:
    members: MembersOverTime
    money: FailedRecovered
    redemptions: list[ServiceAmount]
    liability: Liability
    breakage: Breakage
    payback: Payback


def dashboard(*, practice_id: int | None, now: datetime, months: int = 12) -> Dashboard:
    return Dashboard(
        members=members_by_tier_over_time(practice_id=practice_id, now=now, months=months),
        money=failed_vs_recovered(practice_id=practice_id, now=now, months=months),
        redemptions=redemptions_per_service(practice_id=practice_id, now=now),
        liability=credit_liability(practice_id=practice_id),
        breakage=breakage_by_month(practice_id=practice_id, now=now, months=months),
        payback=payback_metrics(practice_id=practice_id, now=now, months=months),
    )
