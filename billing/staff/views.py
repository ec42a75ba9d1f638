"""The manager's pages: the dashboard and the dunning queue. Thin: the figures from billing.metrics,
the queue from billing.dunning.selectors, the staff's actions through billing.dunning."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import metrics
from billing.dunning import selectors as dunning_selectors
from billing.dunning import staff_actions
from billing.metrics.nudges import nudge_effect
from billing.reconciliation.selectors import reconciliation_status, reconciliation_trend
from billing.models import DiscrepancyKind, DunningCase
from memberships.errors import LedgerError
from memberships.services import Actor
from memberships.views.common import audit_view, client_ip, practice_for, practice_scope, staff_page

from . import charts


def _dollars(cents: float) -> str:
    return f"${cents / 100:,.0f}"


def _with_total(members: metrics.MembersOverTime) -> list[tuple[str, list[int]]]:
    series = [(t.name, t.members) for t in members.tiers]
    return [("All tiers", members.total_members)] + series if len(series) > 1 else series


def _day(moment) -> str:
    return f"{moment:%b} {moment.day}"


def _reconciliation(practice, zone) -> dict:
    """The dashboard's reconciliation section: open discrepancies at each of the last runs, by kind,
    and where the latest run left things."""
    trend = reconciliation_trend(practice_id=practice.pk, limit=30)
    kinds = [(value, label) for value, label in DiscrepancyKind.choices
             if any(point.open_counts.get(value) for point in trend)]
    series = [(label, [point.open_counts.get(value, 0) for point in trend]) for value, label in kinds]
    series = series or [("Open", [0] * len(trend))]
    return {
        "reconciliation_practice": practice,
        "reconciliation_zone": zone,
        "reconciliation": reconciliation_status(practice_id=practice.pk),
        "reconciliation_trend": trend,
        "reconciliation_chart": charts.bar_chart(
            title="Open discrepancies at each reconciliation run, by kind", stacked=True,
            labels=[_day(timezone.localtime(point.at, zone)) for point in trend],
            series=series) if trend else None,
        "reconciliation_series": [(name, charts.color(i)) for i, (name, _) in enumerate(series)],
    }


@staff_page("view_dashboard")
def dashboard(request):
    now = timezone.now()
    scope = practice_scope(request.user)
    try:
        practice = practice_for(request.user)    # the reconciliation section's (and the import and rollout pages')
    except PermissionDenied:
        practice = None                          # a superuser on a site without a practice yet
    zone = metrics.practice_zone(practice if scope is not None else None)
    data = metrics.dashboard(practice_id=scope, now=now, zone=zone)
    months = [m.strftime("%b %y") for m in data.members.months]
    members = data.members
    context = {
        "data": data,
        "now": now,
        "members_chart": charts.line_chart(
            title="Active members by tier, by month", labels=months,
            series=_with_total(members)),
        "member_series": [(name, charts.color(i)) for i, (name, _) in enumerate(_with_total(members))],
        "mrr_chart": charts.bar_chart(
            title="Monthly recurring revenue by tier", labels=months, stacked=True, fmt=_dollars, floor=40000,
            series=[(t.name, t.mrr_cents) for t in members.tiers]),
        "mrr_series": [(t.name, charts.color(i)) for i, t in enumerate(members.tiers)],
        "money_chart": charts.bar_chart(
            title="Failed and recovered dollars by month", labels=[m.strftime("%b %y") for m in data.money.months],
            fmt=_dollars, floor=40000,
            series=[("Failed", data.money.failed_cents), ("Recovered", data.money.recovered_cents)]),
        "money_series": [("Failed", charts.color(0)), ("Recovered", charts.color(1))],
        "redemptions_chart": charts.hbar_chart(
            title="Redemptions per service, last 90 days",
            items=[(s.name, s.value_cents, f"{s.quantity_display} ({_dollars(s.value_cents)})")
                   for s in data.redemptions]),
        "liability_chart": charts.hbar_chart(
            title="Unredeemed credit liability by service",
            items=[(s.name, s.value_cents, _dollars(s.value_cents)) for s in data.liability.services]),
        "breakage_chart": charts.bar_chart(
            title="Breakage (expired credit) by month", labels=[m.strftime("%b %y") for m in data.breakage.months],
            fmt=_dollars, floor=40000, series=[("Breakage", data.breakage.cents)]),
        "mrr_now": members.total_mrr_cents[-1] if members.months else 0,
        "members_now": members.total_members[-1] if members.months else 0,
        "all_practices": scope is None,
        "attention": metrics.needs_attention(practice_id=scope, now=now),
        "nudges": nudge_effect(practice_id=scope, now=now, zone=zone),
        **(_reconciliation(practice, metrics.practice_zone(practice)) if practice else {}),
    }
    return render(request, "billing/dashboard.html", context)


def _practice_id(request) -> int:
    return practice_for(request.user).pk


@staff_page("view_dashboard")
def dunning(request):
    """Open dunning cases of the practice, oldest first: next action, amount at risk. Every member
    listed is audited."""
    practice = practice_for(request.user)
    rows = dunning_selectors.open_dunning_cases(practice.pk)
    at_risk = dunning_selectors.amount_at_risk(practice.pk)
    audit_view(request, action="dunning_queue", members=[row.member_id for row in rows])
    return render(request, "billing/dunning.html", {
        "practice": practice,
        "rows": rows,
        "at_risk": sorted(at_risk.items()),
    })


def _actor(request) -> Actor:
    return Actor.staff(request.user, ip_address=client_ip(request))


def _case(request, case_id: int) -> DunningCase:
    return get_object_or_404(DunningCase.objects.select_related("member"), pk=case_id,
                             practice_id=_practice_id(request))


@require_POST
@staff_page("view_dashboard")
def mark_contacted(request, case_id: int):
    case = _case(request, case_id)
    note = request.POST.get("note", "").strip()[:200]
    try:
        staff_actions.record_member_contacted(case=case, actor=_actor(request), note=note, now=timezone.now())
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Noted: {case.member.full_name} contacted.")
    return redirect("manager:dunning")


@require_POST
@staff_page("view_dashboard")
def resend_card_link(request, case_id: int):
    """Send the member the card-update link again (email, and SMS with consent) through dunning's
    messages; quiet hours may hold the SMS until morning."""
    case = _case(request, case_id)
    try:
        made = staff_actions.resend_card_link(case=case, actor=_actor(request), now=timezone.now())
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        channels = sorted({m.channel for m in made})
        messages.success(request, f"Card-update link queued for {case.member.full_name} "
                                  f"({', '.join(channels) if channels else 'no channel available'}).")
    return redirect("manager:dunning")
