"""The group dashboard (`/group/`) and its CSV (`/group/export.csv`): a group manager's one view of
every location of the group, side by side and in total, with the practice dashboard's charts over
the whole group. Anyone else — a practice's manager, staff, a superuser without a group — gets 404,
as for another practice's pages; signed out, the login page."""

from __future__ import annotations

import csv
import functools
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import metrics
from billing.sheets.export import safe_row
from billing.staff import charts
from memberships.services.locations import is_group_manager
from memberships.views.common import audit

from . import snapshot
from .figures import GroupDashboard, Row


def group_page(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_group_manager(request.user):
            raise Http404("No group here.")
        return view(request, *args, **kwargs)

    wrapped.staff_permission = "view_group_dashboard"
    return wrapped


def _dollars(cents: float) -> str:
    return f"${cents / 100:,.0f}"


def _merged(items: list[metrics.ServiceAmount]) -> list[tuple[str, int, str]]:
    """One bar per service name across the group's practices (each has its own HydraFacial)."""
    by_name: dict[str, list] = {}
    for s in items:
        entry = by_name.setdefault(s.name, [0, 0, s.kind])
        entry[0] += s.value_cents
        entry[1] += s.quantity
    merged = [metrics.ServiceAmount(service_id=0, name=name, kind=kind, quantity=quantity, value_cents=value)
              for name, (value, quantity, kind) in by_name.items()]
    return [(s.name, s.value_cents, f"{s.quantity_display} ({_dollars(s.value_cents)})")
            for s in sorted(merged, key=lambda s: -s.value_cents)]


def _tier_series(members: metrics.MembersOverTime, attr: str) -> list[tuple[str, list[int]]]:
    by_name: dict[str, list[int]] = {}
    for tier in members.tiers:
        values = getattr(tier, attr)
        current = by_name.setdefault(tier.name, [0] * len(values))
        by_name[tier.name] = [a + b for a, b in zip(current, values)]
    return list(by_name.items())


def _chart_context(board: GroupDashboard) -> dict:
    data = board.charts
    months = [m.strftime("%b %y") for m in data.members.months]
    members = _tier_series(data.members, "members")
    with_total = [("All tiers", data.members.total_members)] + members if len(members) > 1 else members
    mrr = _tier_series(data.members, "mrr_cents")
    return {
        "members_chart": charts.line_chart(title="Active members by tier, by month", labels=months,
                                           series=with_total),
        "member_series": [(name, charts.color(i)) for i, (name, _) in enumerate(with_total)],
        "mrr_chart": charts.bar_chart(title="Monthly recurring revenue by tier", labels=months, stacked=True,
                                      fmt=_dollars, floor=40000, series=mrr),
        "mrr_series": [(name, charts.color(i)) for i, (name, _) in enumerate(mrr)],
        "money_chart": charts.bar_chart(
            title="Failed and recovered dollars by month", labels=[m.strftime("%b %y") for m in data.money.months],
            fmt=_dollars, floor=40000,
            series=[("Failed", data.money.failed_cents), ("Recovered", data.money.recovered_cents)]),
        "money_series": [("Failed", charts.color(0)), ("Recovered", charts.color(1))],
        "redemptions_chart": charts.hbar_chart(title="Redemptions per service, last 90 days",
                                               items=_merged(data.redemptions)),
        "liability_chart": charts.hbar_chart(
            title="Unredeemed credit liability by service",
            items=[(name, value, _dollars(value)) for name, value, _ in _merged(data.liability.services)]),
        "breakage_chart": charts.bar_chart(
            title="Breakage (expired credit) by month", labels=[m.strftime("%b %y") for m in data.breakage.months],
            fmt=_dollars, floor=40000, series=[("Breakage", data.breakage.cents)]),
        "location_mrr_chart": charts.hbar_chart(
            title="MRR by location, now",
            items=[(row.name, row.mrr_cents, _dollars(row.mrr_cents)) for row in board.rows]),
        "location_members_chart": charts.hbar_chart(
            title="Active members by location, now",
            items=[(row.name, row.members, f"{row.members:,}") for row in board.rows]),
    }


@group_page
def dashboard(request):
    """The figures as the worker last computed them (`snapshot`), with the time they describe."""
    profile = request.user.staff_profile
    board, figures = snapshot.current(organization_id=profile.organization_id, now=timezone.now())
    return render(request, "billing/group_dashboard.html", {
        "organization": profile.organization, "board": board, "data": board.charts, "figures": figures,
        "as_of": (as_of := _as_of(board, figures)), "as_of_zone": as_of.tzname(),
        "refresh_minutes": settings.GROUP_FIGURES_REFRESH_SECONDS // 60, **_chart_context(board),
    })


def _as_of(board: GroupDashboard, figures) -> datetime:
    """The moment the figures describe, in the group's time zone (its charts' months and weeks), which
    the page names (its abbreviation, which also tells apart the two 1:30 AMs of the night the clocks
    go back): the group's practices may be in several zones, none of them the site's."""
    return timezone.localtime(figures.computed_at, board.zone)


@group_page
@require_POST
def refresh(request):
    """"Refresh now": the figures computed again (unless they are under a minute old)."""
    profile = request.user.staff_profile
    board, figures = snapshot.refresh_on_request(organization_id=profile.organization_id, now=timezone.now())
    messages.success(request, f"Figures as of {_as_of(board, figures):%H:%M:%S %Z}.")
    return redirect("group:dashboard")


COLUMNS = [
    ("Location", None), ("Practice", None), ("Active members", "members"), ("MRR", "mrr_cents"),
    ("Failed payments open", "failed_open_count"), ("Failed payments open, amount", "failed_open_cents"),
    ("Recovered, 12 months", "recovered_cents"), ("Breakage, 12 months", "breakage_cents"),
    ("Unredeemed liability", "liability_cents"), ("Frozen credit", "frozen_cents"),
    ("Failed payments, 8 weeks", "failed_payments"), ("Addressed, 8 weeks", "failed_addressed"),
    ("Recovered by dunning, 8 weeks", "failed_recovered"), ("Discrepancies found, 8 weeks", "discrepancies_found"),
    ("Discrepancies resolved, 8 weeks", "discrepancies_resolved"), ("Disputes, 8 weeks", "disputes"),
]


def _cells(row: Row) -> list:
    out = [row.name, row.practice_name]
    for _, attr in COLUMNS[2:]:
        value = getattr(row, attr)
        out.append(f"{value / 100:.2f}" if attr.endswith("_cents") else value)
    return out


@group_page
def export(request):
    """The table as CSV: one line per location, then the total; amounts in dollars (two decimals).
    The same figures as the page; the file's name says when they were taken."""
    profile = request.user.staff_profile
    board, figures = snapshot.current(organization_id=profile.organization_id, now=timezone.now())
    when = _as_of(board, figures)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="group-{profile.organization.slug}-'
                                       f'{when:%Y%m%d-%H%M}.csv"')
    writer = csv.writer(response)
    writer.writerow([title for title, _ in COLUMNS])
    for row in board.rows + [board.total]:
        writer.writerow(safe_row(_cells(row)))
    audit(request, action="group_dashboard_exported", obj=profile.organization)
    return response
