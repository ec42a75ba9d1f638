"""The group dashboard's figures: every location of a group side by side, and the group in total.

A member counts at their home location (`Member.home_location`); members without one count on a row
of their practice of their own ("<practice> — no home location"). Each figure is the practice
dashboard's (`billing.metrics`), cut by home location: members and MRR now, failed payments still
open, recovered and breakage over the dashboard's 12 months, unredeemed liability (frozen apart), and
the payback of the last 8 weeks (dunning cases opened, addressed, recovered; discrepancies found and
resolved; disputes), each practice's weeks in its own time zone as on its dashboard. So the rows add
up to the sum of the practices' dashboards.

Set-based: one grouped query per figure for the whole group, whatever the number of locations or
practices (the per-practice week windows are conditions in the same query)."""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, tzinfo
from functools import reduce
from types import SimpleNamespace

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from billing import metrics
from billing.metrics.months import aware
from billing.metrics.payments import payment_events, tally_failed_recovered
from billing.models import Discrepancy, DunningCase, DunningCaseStatus
from memberships.models import (
    EntitlementBalance, EntryKind, LedgerEntry, Location, Membership, MembershipStatus, Practice, TierLocationPrice,
)

MONTHS = 12
WEEKS = 8


@dataclass
class Row:
    """One location (or a practice's members without a home location), or the group's total."""

    name: str
    practice_name: str
    practice_id: int | None = None
    location_id: int | None = None
    members: int = 0
    mrr_cents: int = 0
    failed_open_count: int = 0
    failed_open_cents: int = 0
    recovered_cents: int = 0            # over the 12 months
    breakage_cents: int = 0             # over the 12 months
    liability_cents: int = 0            # unredeemed, not frozen
    frozen_cents: int = 0               # frozen balances of cancelled memberships
    failed_payments: int = 0            # payback, 8 weeks: dunning cases opened
    failed_addressed: int = 0
    failed_recovered: int = 0
    discrepancies_found: int = 0
    discrepancies_resolved: int = 0
    disputes: int = 0

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in FIGURES)


FIGURES = [f.name for f in fields(Row) if f.type == "int" and f.name not in ("practice_id", "location_id")]


@dataclass
class GroupDashboard:
    practices: list[Practice]
    rows: list[Row]
    total: Row
    charts: metrics.Dashboard = field(repr=False)
    zone: tzinfo


class _Buckets:
    """Rows by home location; a member without one (or with one outside the group) on their
    practice's own row."""

    def __init__(self, practices: list[Practice], locations: list[Location]):
        self.names = {p.pk: p.name for p in practices}
        self.rows: dict[tuple, Row] = {}
        self.location_practice = {}
        for location in locations:
            self.location_practice[location.pk] = location.practice_id
            self.rows[("l", location.pk)] = Row(name=location.name, practice_name=self.names[location.practice_id],
                                                practice_id=location.practice_id, location_id=location.pk)
        self.active = {("l", loc.pk) for loc in locations if loc.active}

    def row(self, practice_id: int, location_id: int | None) -> Row:
        if location_id in self.location_practice:
            return self.rows[("l", location_id)]
        key = ("p", practice_id)
        if key not in self.rows:
            name = self.names[practice_id]
            self.rows[key] = Row(name=f"{name} — no home location", practice_name=name, practice_id=practice_id)
        return self.rows[key]

    def shown(self) -> list[Row]:
        """Active locations always, others (and the no-home rows) when they have something to show;
        by practice, then location, the no-home row last."""
        order = {pk: i for i, pk in enumerate(self.names)}
        rows = [row for key, row in self.rows.items() if key in self.active or not row.is_empty]
        return sorted(rows, key=lambda r: (order[r.practice_id], r.location_id is None, r.name))


def _members(buckets: _Buckets, ids: list[int], now: datetime) -> None:
    """Members and MRR now, as the dashboard's current month counts them (active or past due), at
    the price each membership pays (its pricing location's own price for the tier, else the tier's)."""
    alive = (Q(started_at__lte=now) & (Q(cancelled_at__isnull=True) | Q(cancelled_at__gt=now))
             & Q(status__in=[MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE]))
    rows = list(Membership.objects.filter(alive, member__practice_id__in=ids)
                .values("member__practice_id", "member__home_location_id", "tier_id", "price_location_id",
                        "tier__price_cents", "tier__interval")
                .annotate(n=Count("id")).order_by())
    located = {r["price_location_id"] for r in rows if r["price_location_id"] is not None}
    own = {(t, loc): cents for t, loc, cents in TierLocationPrice.objects.filter(location_id__in=located)
           .values_list("tier_id", "location_id", "price_cents")}
    for r in rows:
        row = buckets.row(r["member__practice_id"], r["member__home_location_id"])
        price = metrics.monthly_price_cents(SimpleNamespace(price_cents=r["tier__price_cents"],
                                                            interval=r["tier__interval"]),
                                            own.get((r["tier_id"], r["price_location_id"])))
        row.members += r["n"]
        row.mrr_cents += r["n"] * price


def _payments(buckets: _Buckets, practices: list[Practice], now: datetime, starts: list[date],
              zone: tzinfo) -> metrics.FailedRecovered:
    """Failed payments still open and recovered dollars per row, tallied as the dashboard tallies a
    practice (each row's members' events on their own, over its practice's months in its own time
    zone); the group's chart tallies all the events over the group's months (`starts`) in the
    group's `zone`, as its other charts: the rows' months are not the group's when the zones differ."""
    ids = [p.pk for p in practices]
    zones = {p.pk: metrics.practice_zone(p) for p in practices}
    events = list(payment_events(practice_id=ids, now=now, starts=starts).values(
        "kind", "membership_id", "created_at", "payload", "practice_id", "member__home_location_id"))
    by_row: dict[int, tuple[Row, list]] = {}
    for event in events:
        row = buckets.row(event["practice_id"], event["member__home_location_id"])
        by_row.setdefault(id(row), (row, []))[1].append(event)
    for row, own in by_row.values():
        with timezone.override(zones[row.practice_id]):
            tally = tally_failed_recovered(own, starts=metrics.month_starts(now=now, months=MONTHS))
        row.failed_open_count += tally.open_count
        row.failed_open_cents += tally.open_cents
        row.recovered_cents += sum(tally.recovered_cents)
    with timezone.override(zone):
        return tally_failed_recovered(events, starts=starts)


def _month_window(practices: list[Practice], now: datetime, column: str, practice_path: str) -> Q:
    """`column` falls in its practice's 12 months (months in the practice's zone, as its dashboard's
    breakage): one condition per distinct start."""
    since: dict[datetime, list[int]] = defaultdict(list)
    for practice in practices:
        with timezone.override(metrics.practice_zone(practice)):
            since[aware(metrics.month_starts(now=now, months=MONTHS)[0])].append(practice.pk)
    conditions = [Q(**{f"{practice_path}__in": ids, f"{column}__gte": start, f"{column}__lte": now})
                  for start, ids in since.items()]
    return reduce(operator.or_, conditions) if conditions else Q(pk__in=[])


def _breakage(buckets: _Buckets, practices: list[Practice], now: datetime) -> None:
    """Expired credit (not reversed) over each practice's 12 months, at list price."""
    window = _month_window(practices, now, "created_at", "membership__member__practice_id")
    expired = (LedgerEntry.objects.filter(window, ~Exists(LedgerEntry.objects.filter(reverses=OuterRef("pk"))),
                                          kind=EntryKind.EXPIRE)
               .values("membership__member__practice_id", "membership__member__home_location_id")
               .annotate(v=Sum(F("quantity") * F("service__unit_value_cents"))).order_by())
    for r in expired:
        buckets.row(r["membership__member__practice_id"],
                    r["membership__member__home_location_id"]).breakage_cents += -(r["v"] or 0)


def _liability(buckets: _Buckets, ids: list[int]) -> metrics.Liability:
    """Unredeemed balances at list price per row and, for the group's chart, per service (frozen
    balances apart), from one grouped query: `metrics.credit_liability`'s figures, cut by row."""
    rows = (EntitlementBalance.objects.filter(balance__gt=0, membership__member__practice_id__in=ids)
            .values("membership__member__practice_id", "membership__member__home_location_id", "service_id",
                    "service__name", "service__kind", "service__unit_value_cents")
            .annotate(live=Sum("balance", filter=Q(frozen_at__isnull=True)),
                      frozen=Sum("balance", filter=Q(frozen_at__isnull=False))).order_by())
    services: dict[int, metrics.ServiceAmount] = {}
    frozen_cents = 0
    for r in rows:
        row = buckets.row(r["membership__member__practice_id"], r["membership__member__home_location_id"])
        unit, live, frozen = r["service__unit_value_cents"], r["live"] or 0, r["frozen"] or 0
        row.liability_cents += live * unit
        row.frozen_cents += frozen * unit
        frozen_cents += frozen * unit
        if live:
            service = services.setdefault(r["service_id"], metrics.ServiceAmount(
                service_id=r["service_id"], name=r["service__name"], kind=r["service__kind"], quantity=0,
                value_cents=0))
            service.quantity += live
            service.value_cents += live * unit
    return metrics.Liability(services=sorted(services.values(), key=lambda s: -s.value_cents),
                             frozen_cents=frozen_cents)


def week_window(now: datetime, zone: tzinfo, weeks: int = WEEKS) -> tuple[datetime, datetime]:
    """The payback weeks' span in `zone`, as `metrics.payback_weeks` draws it: Monday `weeks - 1`
    weeks ago, 00:00, to next Monday, 00:00."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    return (datetime.combine(monday - timedelta(weeks=weeks - 1), time(), zone),
            datetime.combine(monday + timedelta(weeks=1), time(), zone))


def _within(practices: list[Practice], now: datetime, column: str, practice_path: str = "practice_id") -> Q:
    """`column` falls in its practice's payback weeks: one condition per distinct window."""
    windows: dict[tuple, list[int]] = defaultdict(list)
    for practice in practices:
        windows[week_window(now, metrics.practice_zone(practice))].append(practice.pk)
    conditions = [Q(**{f"{practice_path}__in": ids, f"{column}__gte": since, f"{column}__lt": until})
                  for (since, until), ids in windows.items()]
    return reduce(operator.or_, conditions) if conditions else Q(pk__in=[])


def _payback(buckets: _Buckets, practices: list[Practice], ids: list[int], now: datetime) -> None:
    opened, closed = _within(practices, now, "opened_at"), _within(practices, now, "closed_at")
    cases = (DunningCase.objects.filter(opened | closed, practice_id__in=ids)
             .values("practice_id", "member__home_location_id")
             .annotate(opened=Count("id", filter=opened), closed=Count("id", filter=closed),
                       recovered=Count("id", filter=closed & Q(status=DunningCaseStatus.RECOVERED))).order_by())
    for r in cases:
        row = buckets.row(r["practice_id"], r["member__home_location_id"])
        row.failed_payments += r["opened"]
        row.failed_addressed += r["closed"]
        row.failed_recovered += r["recovered"]
    found, resolved = _within(practices, now, "first_seen_at"), _within(practices, now, "resolved_at")
    for r in (Discrepancy.objects.filter(found | resolved, practice_id__in=ids)
              .values("practice_id", "member__home_location_id")
              .annotate(found=Count("id", filter=found), resolved=Count("id", filter=resolved)).order_by()):
        row = buckets.row(r["practice_id"], r["member__home_location_id"])
        row.discrepancies_found += r["found"]
        row.discrepancies_resolved += r["resolved"]
    disputed = _within(practices, now, "created_at", "membership__member__practice_id")
    for r in (LedgerEntry.objects.filter(disputed, kind=EntryKind.REVERSE, dispute=True)
              .values("membership__member__practice_id", "membership__member__home_location_id")
              .annotate(n=Count("id")).order_by()):
        buckets.row(r["membership__member__practice_id"], r["membership__member__home_location_id"]).disputes += r["n"]


def total_of(rows: list[Row]) -> Row:
    total = Row(name="Total", practice_name="")
    for row in rows:
        for name in FIGURES:
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return total


def group_dashboard(*, organization_id: int, now: datetime) -> GroupDashboard:
    """Every location of the group side by side, the total, and the group's charts (the practice
    dashboard's figures over all the group's practices at once)."""
    practices = list(Practice.objects.filter(organization_id=organization_id).order_by("name", "id"))
    ids = [p.pk for p in practices]
    buckets = _Buckets(practices, list(Location.objects.filter(practice_id__in=ids).order_by("name", "id")))
    zone = metrics.practice_zone(practices[0] if practices else None)    # the group's charts' months
    with timezone.override(zone):
        starts = metrics.month_starts(now=now, months=MONTHS)
        members_chart = metrics.members_by_tier_over_time(practice_id=ids, now=now, months=MONTHS)
    _members(buckets, ids, now)
    money = _payments(buckets, practices, now, starts, zone)
    _breakage(buckets, practices, now)
    liability = _liability(buckets, ids)
    _payback(buckets, practices, ids, now)
    charts = metrics.Dashboard(
        members=members_chart,
        money=money,
        redemptions=metrics.redemptions_per_service(practice_id=ids, now=now),
        liability=liability,
        breakage=metrics.breakage_by_month(practice_id=ids, now=now, months=MONTHS, zone=zone),
        payback=metrics.payback_weeks(practice_id=ids, now=now, weeks=WEEKS, zone=zone),
    )
    rows = buckets.shown()
    return GroupDashboard(practices=practices, rows=rows, total=total_of(rows), charts=charts, zone=zone)
