"""The manager's pages: the dashboard and the dunning queue. Thin: selectors in billing.metrics and
billing.staff.queue, writes in billing.staff.services."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import metrics
from memberships.errors import LedgerError
from memberships.models import Membership
from memberships.services import Actor
from memberships.views.common import audit, practice_scope, staff_page

from . import charts, services
from .queue import open_dunning_cases


def _dollars(cents: float) -> str:
    return f"${cents / 100:,.0f}"


def _with_total(members: metrics.MembersOverTime) -> list[tuple[str, list[int]]]:
    series = [(t.name, t.members) for t in members.tiers]
    return [("All tiers", members.total_members)] + series if len(series) > 1 else series


@staff_page("view_dashboard")
def dashboard(request):
    now = timezone.now()
    data = metrics.dashboard(practice_id=practice_scope(request.user), now=now)
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
    }
    return render(request, "billing/dashboard.html", context)


@staff_page("view_dashboard")
def dunning(request):
    rows = open_dunning_cases(practice_id=practice_scope(request.user), now=timezone.now())
    return render(request, "billing/dunning.html", {
        "rows": rows,
        "total_at_risk": sum(r.amount_at_risk_cents for r in rows),
    })


def _membership(request, membership_id: int) -> Membership:
    scope = practice_scope(request.user)
    memberships = Membership.objects.select_related("member")
    if scope is not None:
        memberships = memberships.filter(member__practice_id=scope)
    return get_object_or_404(memberships, pk=membership_id)


@require_POST
@staff_page("view_dashboard")
def mark_contacted(request, membership_id: int):
    membership = _membership(request, membership_id)
    channel = request.POST.get("channel", "phone")
    if channel not in ("phone", "sms", "email", "in person"):
        channel = "phone"
    try:
        with transaction.atomic():
            services.mark_contacted(membership=membership, actor=Actor.staff(request.user), now=timezone.now(),
                                    channel=channel)
            audit(request, action="dunning_contacted", obj=membership, member=membership.member,
                  detail={"channel": channel})
    except LedgerError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Noted: {membership.member.full_name} contacted ({channel}).")
    return redirect("manager:dunning")
