"""Aggregates for the manager dashboard (and anyone else who needs them): members and MRR by tier
over time, failed vs recovered dollars, redemptions per service, credit liability, breakage, and the
payback metrics week by week. Reads only; every function takes `now` and an optional practice id
(None: all).

The monthly figures are derived from the ledger (memberships, entries, balances) and the timeline
(Events); the processor's invoices are not needed, so they hold before the processor is connected.
The payback weeks also read the dunning cases and reconciliation's discrepancies."""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from billing.models import Discrepancy, DiscrepancyKind, DunningCase, DunningCaseStatus
from memberships.models import (
    BillingInterval,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    Membership,
    MembershipStatus,
    Practice,
    Service,
    ServiceKind,
    Tier,
)


# What at the edges needs a person (updates that could not be delivered, webhooks waiting or failed,
# the record's exceptions): `integrations` registers its reader when its app is ready; billing never
# imports the edges. reader(practice_id=, now=) -> an object the dashboard template reads.
_attention_reader: Callable[..., Any] | None = None


def register_attention_reader(reader: Callable[..., Any]) -> None:
    global _attention_reader
    _attention_reader = reader


def needs_attention(*, practice_id: int | None, now: datetime) -> Any:
    """The edges' counts for the dashboard's "Needs attention" box; None without a reader."""
    return _attention_reader(practice_id=practice_id, now=now) if _attention_reader is not None else None


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


@dataclass(frozen=True)
class PaybackWeek:
    """One week (Monday 00:00 to Monday 00:00 in the practice's time zone) of what the ledger pays
    back: failed payments addressed and how fast, reconciliation work, disputes, billing errors."""

    week_start: datetime                 # Monday 00:00, aware, in the practice's time zone
    failed_payments: int                 # dunning cases opened (one per failed invoice)
    failed_addressed: int                # cases closed: recovered, exhausted or cancelled
    failed_recovered: int                # of those, recovered (the invoice got paid)
    hours_to_address: float | None       # median hours from the failure to the close, cases closed that week
    discrepancies_found: int             # first found by a reconciliation run that week
    discrepancies_resolved: int          # marked resolved by a manager that week
    hours_to_resolve: float | None       # median hours from first found to resolved
    disputes: int                        # reversals marked as an entitlement dispute
    tier_billing_errors: int             # members with a price mismatch first found by reconciliation that week

    @property
    def starts_on(self) -> date:
        return self.week_start.date()

    @property
    def zone_name(self) -> str:
        return str(self.week_start.tzinfo)


def practice_zone(practice: Practice | None) -> tzinfo:
    """The practice's time zone; the site's when there is no practice or its zone is unknown."""
    try:
        return ZoneInfo(practice.timezone) if practice is not None and practice.timezone \
            else timezone.get_default_timezone()
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def _median_hours(deltas: list[timedelta]) -> float | None:
    return round(statistics.median(d.total_seconds() / 3600 for d in deltas), 1) if deltas else None


def payback_weeks(*, practice_id: int | None, now: datetime, weeks: int = 8,
                  zone: tzinfo | None = None) -> list[PaybackWeek]:
    """The last `weeks` weeks, oldest first, the current (partial) one last. Weeks run Monday to
    Monday in the practice's time zone (`zone`; by default the practice's own, or the site's for all
    practices). Three queries, whatever the number of rows: dunning cases, discrepancies, disputed
    reversals (a fourth for the practice when no zone is given)."""
    if zone is None:
        zone = practice_zone(Practice.objects.filter(pk=practice_id).first() if practice_id is not None else None)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    starts = [datetime.combine(monday - timedelta(weeks=n), time(), zone) for n in range(weeks - 1, -1, -1)]
    since, until = starts[0], datetime.combine(monday + timedelta(weeks=1), time(), zone)

    def week_of(moment: datetime | None) -> int | None:
        if moment is None or not (since <= moment < until):
            return None
        return bisect.bisect_right(starts, moment) - 1

    rows = [dict(failed=0, addressed=0, recovered=0, address_times=[], found=0, resolved=0, resolve_times=[],
                 disputes=0, price=set()) for _ in starts]
    cases = _practice(DunningCase.objects.all(), practice_id, "practice_id").filter(
        Q(opened_at__gte=since, opened_at__lt=until) | Q(closed_at__gte=since, closed_at__lt=until))
    for opened, closed, status in cases.values_list("opened_at", "closed_at", "status"):
        if (w := week_of(opened)) is not None:
            rows[w]["failed"] += 1
        if (w := week_of(closed)) is not None:
            rows[w]["addressed"] += 1
            rows[w]["recovered"] += status == DunningCaseStatus.RECOVERED
            rows[w]["address_times"].append(closed - opened)
    found = _practice(Discrepancy.objects.all(), practice_id, "practice_id").filter(
        Q(first_seen_at__gte=since, first_seen_at__lt=until) | Q(resolved_at__gte=since, resolved_at__lt=until))
    for first, resolved, kind, number, fingerprint in found.values_list(
            "first_seen_at", "resolved_at", "kind", "member_number", "fingerprint"):
        if (w := week_of(first)) is not None:
            rows[w]["found"] += 1
            if kind == DiscrepancyKind.PRICE_MISMATCH:     # one error per member, however many sides show it
                rows[w]["price"].add(number or fingerprint)
        if (w := week_of(resolved)) is not None:
            rows[w]["resolved"] += 1
            rows[w]["resolve_times"].append(resolved - first)
    disputes = _practice(LedgerEntry.objects.filter(kind=EntryKind.REVERSE, dispute=True, created_at__gte=since,
                                                    created_at__lt=until),
                         practice_id, "membership__member__practice_id")
    for created in disputes.values_list("created_at", flat=True):
        if (w := week_of(created)) is not None:
            rows[w]["disputes"] += 1
    return [
        PaybackWeek(week_start=start, failed_payments=r["failed"], failed_addressed=r["addressed"],
                    failed_recovered=r["recovered"], hours_to_address=_median_hours(r["address_times"]),
                    discrepancies_found=r["found"], discrepancies_resolved=r["resolved"],
                    hours_to_resolve=_median_hours(r["resolve_times"]), disputes=r["disputes"],
                    tier_billing_errors=len(r["price"]))
        for start, r in zip(starts, rows)
    ]


@dataclass
class Dashboard:
    members: MembersOverTime
    money: FailedRecovered
    redemptions: list[ServiceAmount]
    liability: Liability
    breakage: Breakage
    payback: list[PaybackWeek]


def dashboard(*, practice_id: int | None, now: datetime, months: int = 12, zone: tzinfo | None = None) -> Dashboard:
    return Dashboard(
        members=members_by_tier_over_time(practice_id=practice_id, now=now, months=months),
        money=failed_vs_recovered(practice_id=practice_id, now=now, months=months),
        redemptions=redemptions_per_service(practice_id=practice_id, now=now),
        liability=credit_liability(practice_id=practice_id),
        breakage=breakage_by_month(practice_id=practice_id, now=now, months=months),
        payback=payback_weeks(practice_id=practice_id, now=now, zone=zone),
    )
