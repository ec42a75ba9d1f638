"""The visit page: a member of the group at the front desk of another practice of it — the chart
panel (tier, status, balances, where the tier may be redeemed) and redeeming, through the same door
as the chart (`redeem_at_desk`). Nothing else about the member is reachable from another practice:
their lifecycle, dunning, timeline and reversal pages stay 404 there. With `?compact=1` it is the
compact panel an EHR shows beside its own, as the chart's: framable only by the record the desk's
location works in (`memberships.framing`), redeeming from it stays in it."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from memberships import services
from memberships.errors import LedgerError, NotRedeemableHere, StaleChart
from memberships.forms import RedeemForm
from memberships.framing import desk_location, framable_by_record
from memberships.services.redemption import check_location
from memberships.visits import Visit, visit_panel

from .common import audit, client_ip, new_form_token, practice_scope, staff_page


def _visit_or_404(request, member_id: int, now) -> Visit:
    panel = visit_panel(member_id=member_id, user=request.user, now=now)
    if panel is None:
        raise Http404("No such member")
    return panel


def _actor(request) -> services.Actor:
    return services.Actor.staff(request.user, ip_address=client_ip(request))


def _refusal_here(panel: Visit, actor: services.Actor) -> str:
    """Why this desk may not redeem for the member (the tier's location rule), or ""."""
    if panel.membership is None:
        return ""
    try:
        check_location(membership=panel.membership, actor=actor)
    except NotRedeemableHere as exc:
        return exc.message
    return ""


def _compact(request) -> bool:
    return request.GET.get("compact") == "1" or request.POST.get("compact") == "1"


def _visit_url(member_id: int, compact: bool) -> str:
    url = reverse("memberships:visit", kwargs={"member_id": member_id})
    return f"{url}?compact=1" if compact else url


def _render(request, panel: Visit, *, redeem_form=None, status: int = 200):
    compact = _compact(request)
    refusal = _refusal_here(panel, _actor(request))
    if redeem_form is None and panel.membership is not None and not refusal:
        usable = [line.service_id for line in panel.balances if line.available > 0]
        redeem_form = RedeemForm(balances=panel.balances, initial={
            "token": new_form_token(), "version": panel.version, "quantity": "1",
            "service": usable[0] if usable else None})
    scope = practice_scope(request.user)
    response = render(request, "memberships/visit.html", {
        "panel": panel,
        "member": panel.member,
        "membership": panel.membership,
        "redeem_form": redeem_form,
        "refusal": refusal,
        "compact": compact,
        "can_redeem": request.user.has_perm("memberships.redeem_entitlement"),
        "own_member": scope is None or scope == panel.member.practice_id,
    }, status=status)
    return framable_by_record(response, desk_location(request.user)) if compact else response


@staff_page("view_chart")
def visit(request, member_id: int):
    panel = _visit_or_404(request, member_id, timezone.now())
    audit(request, action="view_visit", obj=panel.member, member=panel.member)
    return _render(request, panel)


@require_POST
@staff_page("redeem_entitlement")
def visit_redeem(request, member_id: int):
    """Spend from a balance of a member of the group, exactly once per form (the token is the
    idempotency key), refused with the tier's rule when it may not be redeemed here."""
    now = timezone.now()
    panel = _visit_or_404(request, member_id, now)
    membership = panel.membership
    here = _visit_url(member_id, _compact(request))
    if membership is None:
        messages.error(request, "This member has no membership to redeem from.")
        return redirect(here)
    form = RedeemForm(request.POST, balances=panel.balances)
    if form.is_valid():
        data = form.cleaned_data
        service = membership.member.practice.services.get(pk=data["service"])
        try:
            result = services.redeem_at_desk(
                membership=membership, service=service, quantity=data["units"], actor=_actor(request),
                idempotency_key=f"staff:redeem:{membership.pk}:{data['token']}", chart_version=data["version"],
                now=now)
        except StaleChart as exc:
            messages.warning(request, exc.message)
            panel = _visit_or_404(request, member_id, now)
            audit(request, action="view_visit", obj=panel.member, member=panel.member)   # the panel again
            return _render(request, panel, status=409)
        except LedgerError as exc:
            form.add_error(None, exc.message)
        else:
            entry = result.entry
            if result.replayed:
                messages.info(request, "That redemption was already recorded; nothing was spent twice.")
            else:
                messages.success(request, f"Redeemed {service.format_quantity(-entry.quantity)} {service.name}. "
                                          f"{service.format_quantity(entry.balance_after)} left.")
            return redirect(here)
    audit(request, action="view_visit", obj=panel.member, member=panel.member)   # the panel again, form refused
    return _render(request, panel, redeem_form=form, status=400)
