"""Member search, the chart panel, redemption and its reversal."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from memberships import selectors, services
from memberships.errors import LedgerError, StaleChart
from memberships.forms import RedeemForm, ReverseForm, SearchForm
from memberships.framing import desk_location, framable_by_record
from memberships.models import EntryKind, LedgerEntry
from memberships.search_rows import with_open_membership

from .common import audit, audit_view, client_ip, new_form_token, practice_scope, staff_page


@staff_page("view_chart")
def home(request):
    """The landing page: member search. Every member listed is audited (names, phones, emails)."""
    form = SearchForm(request.GET or None)
    results = []
    query = ""
    in_group, own = False, None
    if form.is_valid():
        query = form.cleaned_data["q"]
        practice_ids = selectors.searchable_practice_ids(request.user)
        in_group = practice_ids is not None and len(practice_ids) > 1
        members = selectors.search_members(practice_ids=practice_ids, query=query)
        # each member's open membership, its tier's name and (shown in a group) the member's practice
        # and home location, in the same statement
        members = list(with_open_membership(members))
        own = practice_scope(request.user)
        results = [(member, member.open_membership) for member in members]
        if len(results) == 1 and request.GET.get("go") == "1":
            return redirect(_member_url(members[0], own))  # the chart (or the visit page) audits its read
        audit_view(request, action="search_members", members=members)
    return render(request, "memberships/search.html", {"form": form, "results": results, "query": query,
                                                       "in_group": in_group, "own_practice_id": own})


def _member_url(member, own_practice_id: int | None) -> str:
    """The chart of a member of the user's practice; the visit page (the chart panel and redeeming,
    nothing else) of a member of another practice of the group."""
    from django.urls import reverse

    name = "memberships:chart" if own_practice_id in (None, member.practice_id) else "memberships:visit"
    return reverse(name, kwargs={"member_id": member.pk})


def _panel_or_404(request, member_id: int, now):
    panel = selectors.chart_panel(member_id=member_id, user=request.user, now=now)
    if panel is None:
        raise Http404("No such member")
    return panel


def render_chart(request, panel, *, redeem_form=None, status: int = 200):
    compact = request.GET.get("compact") == "1" or request.POST.get("compact") == "1"
    if redeem_form is None and panel.membership is not None:
        usable = [line.service_id for line in panel.balances if line.available > 0]
        redeem_form = RedeemForm(balances=panel.balances, initial={
            "token": new_form_token(), "version": panel.version, "quantity": "1",
            "service": usable[0] if usable else None})
    response = render(request, "memberships/chart.html", {
        "panel": panel,
        "member": panel.member,
        "membership": panel.membership,
        "redeem_form": redeem_form,
        "compact": compact,
        "can_redeem": request.user.has_perm("memberships.redeem_entitlement"),
        "can_manage": request.user.has_perm("memberships.manage_membership"),
        "can_see_audit": request.user.has_perm("memberships.view_dashboard"),
        # The registered chart counts, by name (they also stand in for the context processors'
        # own counts, so the navigation costs this page no query).
        **panel.counts,
    }, status=status)
    return framable_by_record(response, desk_location(request.user)) if compact else response


@staff_page("view_chart")
def chart(request, member_id: int):
    panel = _panel_or_404(request, member_id, timezone.now())
    audit(request, action="view_chart", obj=panel.member, member=panel.member)
    return render_chart(request, panel)


def _chart_url(member_id: int, compact: bool) -> str:
    from django.urls import reverse

    url = reverse("memberships:chart", kwargs={"member_id": member_id})
    return f"{url}?compact=1" if compact else url


@require_POST
@staff_page("redeem_entitlement")
def redeem(request, member_id: int):
    """Spend from a balance. The form token is the idempotency key (a double click, a resubmitted
    form or a browser retry spends once); the chart version catches a second desk that redeemed
    the same balance since this chart was opened."""
    now = timezone.now()
    panel = _panel_or_404(request, member_id, now)
    membership = panel.membership
    compact = request.POST.get("compact") == "1"
    if membership is None:
        messages.error(request, "This member has no membership to redeem from.")
        return redirect(_chart_url(member_id, compact))
    form = RedeemForm(request.POST, balances=panel.balances)
    if form.is_valid():
        data = form.cleaned_data
        service = membership.member.practice.services.get(pk=data["service"])
        try:
            result = services.redeem_at_desk(
                membership=membership, service=service, quantity=data["units"],
                actor=services.Actor.staff(request.user, ip_address=client_ip(request)),
                idempotency_key=f"staff:redeem:{membership.pk}:{data['token']}", chart_version=data["version"],
                now=now)
        except StaleChart as exc:
            panel = _panel_or_404(request, member_id, now)
            form = RedeemForm(balances=panel.balances, initial={
                "token": new_form_token(), "version": panel.version, "service": data["service"],
                "quantity": request.POST.get("quantity", "1")})
            form.is_bound = False
            messages.warning(request, exc.message)
            audit(request, action="view_chart", obj=panel.member, member=panel.member)   # the chart again
            return render_chart(request, panel, redeem_form=form, status=409)
        except LedgerError as exc:
            form.add_error(None, exc.message)
        else:
            entry = result.entry
            if entry.membership_id != membership.pk:  # pragma: no cover - keys embed the membership id
                raise Http404
            if result.replayed:
                messages.info(request, "That redemption was already recorded; nothing was spent twice.")
            else:
                messages.success(request, f"Redeemed {service.format_quantity(-entry.quantity)} {service.name}. "
                                          f"{service.format_quantity(entry.balance_after)} left.")
            return redirect(_chart_url(member_id, compact))
    audit(request, action="view_chart", obj=panel.member, member=panel.member)   # the chart again, form refused
    return render_chart(request, panel, redeem_form=form, status=400)


@staff_page("redeem_entitlement")
def reverse(request, member_id: int, entry_id: int):
    """Undo a redemption with a reason (a mirror entry; the original stays)."""
    now = timezone.now()
    scope = practice_scope(request.user)
    entries = LedgerEntry.objects.select_related("membership__member__practice", "membership__tier")
    entries = entries.filter(membership__member_id=member_id, kind=EntryKind.REDEEM)
    if scope is not None:
        entries = entries.filter(membership__member__practice_id=scope)
    entry = get_object_or_404(entries, pk=entry_id)
    member = entry.membership.member
    service = member.practice.services.get(pk=entry.service_id)
    reversal = LedgerEntry.objects.filter(reverses=entry).first()
    if request.method == "POST":
        form = ReverseForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                done = services.reverse_entry.outcome(
                    entry=entry, actor=services.Actor.staff(request.user, ip_address=client_ip(request)),
                    reason=data["reason"], idempotency_key=f"staff:reverse:{entry.pk}", now=now,
                    dispute=data["disputed"])
            except LedgerError as exc:
                form.add_error(None, exc.message)
            else:
                if done.replayed:
                    messages.info(request, "That redemption was already reversed; nothing changed.")
                else:
                    messages.success(request, f"Reversed: {service.format_quantity(-entry.quantity)} {service.name} "
                                              "is back on the balance.")
                return redirect("memberships:chart", member_id=member.pk)
    else:
        form = ReverseForm(initial={"token": new_form_token()})
    audit_view(request, action="reverse_page", obj=entry, members=[member])   # the page names the member
    return render(request, "memberships/reverse.html", {
        "form": form, "entry": entry, "member": member, "service": service, "reversal": reversal,
        "quantity_display": service.format_quantity(-entry.quantity),
        "is_manager": request.user.has_perm(services.adjustments.ADJUST_PERMISSION),
    }, status=400 if request.method == "POST" else 200)
