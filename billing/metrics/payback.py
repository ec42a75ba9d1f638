"""The payback of the ledger, week by week in the practice's time zone: failed payments addressed
and how fast (dunning cases), reconciliation's discrepancies found and resolved, disputes, billing
errors; and month by month, the staff hours saved (balance look-ups the member page answered,
discrepancies closed without staff, member requests done without a staff step)."""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import CharField, Count, Exists, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat, TruncDate, TruncMonth
from django.utils import timezone

from billing.models import Discrepancy, DiscrepancyKind, DunningCase, DunningCaseStatus
from memberships.models import AuditLog, EntryKind, LedgerEntry, MemberRequest, MemberRequestStatus, Practice

from .months import aware, for_practice, month_starts


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
    cases = for_practice(DunningCase.objects.all(), practice_id, "practice_id").filter(
        Q(opened_at__gte=since, opened_at__lt=until) | Q(closed_at__gte=since, closed_at__lt=until))
    for opened, closed, status in cases.values_list("opened_at", "closed_at", "status"):
        if (w := week_of(opened)) is not None:
            rows[w]["failed"] += 1
        if (w := week_of(closed)) is not None:
            rows[w]["addressed"] += 1
            rows[w]["recovered"] += status == DunningCaseStatus.RECOVERED
            rows[w]["address_times"].append(closed - opened)
    # A difference whose numbers changed is kept under a new fingerprint: the one it continues (the same
    # member's, of the same kind, gone in the run that first saw it) was found already.
    continues = (Discrepancy.objects.filter(practice_id=OuterRef("practice_id"), kind=OuterRef("kind"),
                                            member_number=OuterRef("member_number"), gone_at=OuterRef("first_seen_at"))
                 .exclude(member_number=""))
    found = for_practice(Discrepancy.objects.all(), practice_id, "practice_id").filter(
        Q(first_seen_at__gte=since, first_seen_at__lt=until) | Q(resolved_at__gte=since, resolved_at__lt=until)
    ).annotate(continued=Exists(continues))
    for first, resolved, kind, number, fingerprint, continued in found.values_list(
            "first_seen_at", "resolved_at", "kind", "member_number", "fingerprint", "continued"):
        if (w := week_of(first)) is not None and not continued:
            rows[w]["found"] += 1
            if kind == DiscrepancyKind.PRICE_MISMATCH:     # one error per member, however many sides show it
                rows[w]["price"].add(number or fingerprint)
        if (w := week_of(resolved)) is not None:
            rows[w]["resolved"] += 1
            rows[w]["resolve_times"].append(resolved - first)
    disputes = for_practice(LedgerEntry.objects.filter(kind=EntryKind.REVERSE, dispute=True, created_at__gte=since,
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


# --- staff hours saved, month by month --------------------------------------------------------------

MEMBER_PAGE_VIEW = "member_page_view"    # the audit action of the member's own page (portal/me/views.py)


@dataclass(frozen=True)
class StaffMinutes:
    """What each item saves the front desk, and what an hour of staff time costs (settings
    STAFF_MINUTES_PER_BALANCE_LOOKUP, STAFF_MINUTES_PER_RECONCILIATION_ITEM,
    STAFF_MINUTES_PER_SELF_SERVED_REQUEST, STAFF_HOURLY_COST_CENTS)."""

    balance_lookup: int = 4
    reconciliation_item: int = 6
    self_served_request: int = 10
    hourly_cost_cents: int = 2500

    @classmethod
    def from_settings(cls) -> StaffMinutes:
        default = cls()
        return cls(**{name: int(getattr(settings, setting, getattr(default, name))) for name, setting in (
            ("balance_lookup", "STAFF_MINUTES_PER_BALANCE_LOOKUP"),
            ("reconciliation_item", "STAFF_MINUTES_PER_RECONCILIATION_ITEM"),
            ("self_served_request", "STAFF_MINUTES_PER_SELF_SERVED_REQUEST"),
            ("hourly_cost_cents", "STAFF_HOURLY_COST_CENTS"))})


@dataclass(frozen=True)
class StaffTimeMonth:
    """One calendar month (in the practice's time zone) of work the staff did not have to do."""

    month: date
    balance_lookups: int           # members who opened their own page, once per member and day
    reconciliation_closed: int     # discrepancies closed by a later run (the sides agree again), not by staff
    self_served_requests: int      # pauses and cancellations a member did on their page, no staff step
    minutes: int
    cost_cents: int

    @property
    def hours(self) -> float:
        return round(self.minutes / 60, 1)


@dataclass
class StaffTimeSaved:
    months: list[StaffTimeMonth]
    rates: StaffMinutes
    zone_name: str

    @property
    def rows(self) -> list[StaffTimeMonth]:
        """Newest month first, as the table shows them."""
        return self.months[::-1]

    @property
    def total_minutes(self) -> int:
        return sum(m.minutes for m in self.months)

    @property
    def total_hours(self) -> float:
        return round(self.total_minutes / 60, 1)

    @property
    def total_cost_cents(self) -> int:
        return sum(m.cost_cents for m in self.months)


def _counts_by_month(rows, field_name: str, zone: tzinfo, count) -> dict[date, int]:
    grouped = rows.annotate(month=TruncMonth(field_name, tzinfo=zone)).values("month").annotate(n=count).order_by()
    out: dict[date, int] = {}
    for row in grouped:
        moment = row["month"]
        moment = moment.astimezone(zone) if timezone.is_aware(moment) else moment
        key = moment.date().replace(day=1)
        out[key] = out.get(key, 0) + row["n"]
    return out


def staff_time_saved(*, practice_id: int | None, now: datetime, months: int = 12, zone: tzinfo | None = None,
                     rates: StaffMinutes | None = None) -> StaffTimeSaved:
    """The last `months` calendar months, oldest first: balance look-ups the member page answered
    (a member who opened their page that day: one call the front desk did not take), reconciliation
    discrepancies closed by a run rather than by staff (the sides agree again: one whose numbers only
    changed is still the same open difference), member requests applied at once (the
    practice's self-serve setting) — each × its minutes, in hours and in dollars of staff time.
    Three queries, grouped in the database, whatever the number of members (a fourth for the practice
    when no zone is given)."""
    if zone is None:
        zone = practice_zone(Practice.objects.filter(pk=practice_id).first() if practice_id is not None else None)
    rates = rates or StaffMinutes.from_settings()
    with timezone.override(zone):
        starts = month_starts(now=now, months=months)
        since = aware(starts[0])
    views = for_practice(AuditLog.objects.filter(action=MEMBER_PAGE_VIEW, created_at__gte=since, created_at__lte=now,
                                                 member__isnull=False),
                         practice_id, "member__practice_id")
    member_day = Concat(Cast("member_id", CharField()), Value("/"),
                        Cast(TruncDate("created_at", tzinfo=zone), CharField()), output_field=CharField())
    lookups = _counts_by_month(views, "created_at", zone, Count(member_day, distinct=True))
    # Closed by a run: gone, not resolved by staff, and not gone only because its values changed (the
    # same member's difference of the same kind, first seen by the run that closed it, is still there).
    changed = (Discrepancy.objects.filter(practice_id=OuterRef("practice_id"), member_number=OuterRef("member_number"),
                                          kind=OuterRef("kind"), first_seen_at=OuterRef("gone_at"))
               .exclude(member_number=""))
    closed = _counts_by_month(
        for_practice(Discrepancy.objects.filter(gone_at__gte=since, gone_at__lte=now, resolved_at__isnull=True)
                     .filter(~Exists(changed)), practice_id, "practice_id"), "gone_at", zone, Count("id"))
    served = _counts_by_month(
        for_practice(MemberRequest.objects.filter(status=MemberRequestStatus.APPLIED, decided_at__gte=since,
                                                  decided_at__lte=now), practice_id, "practice_id"),
        "decided_at", zone, Count("id"))
    out = []
    for start in starts:
        a, b, c = lookups.get(start, 0), closed.get(start, 0), served.get(start, 0)
        minutes = a * rates.balance_lookup + b * rates.reconciliation_item + c * rates.self_served_request
        out.append(StaffTimeMonth(month=start, balance_lookups=a, reconciliation_closed=b, self_served_requests=c,
                                  minutes=minutes, cost_cents=round(minutes * rates.hourly_cost_cents / 60)))
    return StaffTimeSaved(months=out, rates=rates, zone_name=str(zone))
