"""Enroll, change tier, pause, resume, cancel: each a form, then a confirmation page that states
what happens to the price and the balances, then the service."""

from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone

from memberships import selectors, services
from memberships.errors import LedgerError
from memberships.forms import CancelForm, ChangeTierForm, ConfirmOnlyForm, EnrollForm, NewMemberForm, PauseForm
from memberships.models import (
    AutomationStage,
    Member,
    MembershipStatus,
    Reservation,
    ReservationStatus,
    Service,
    Tier,
    TierBenefit,
)
from memberships.services.lifecycle import check_interval_change, enroll_new_member
from memberships.services.location_prices import change_pricing_location, membership_price, price_of, pricing_location
from memberships.services.stages import member_stage, stage_at_least_for
from memberships.services.refill import preview_next_boundary

from .common import audit_view, client_ip, new_form_token, practice_for, practice_scope, staff_page
from .processor_wording import on_square, square_billing


def _member(request, member_id: int) -> Member:
    scope = practice_scope(request.user)
    members = Member.objects.select_related("practice")
    if scope is not None:
        members = members.filter(practice_id=scope)
    member = members.filter(pk=member_id).first()
    if member is None:
        raise Http404("No such member")
    return member


def _open_membership(member: Member):
    membership = selectors.current_membership(member=member)
    if membership is None or membership.status == MembershipStatus.CANCELLED:
        return None
    return membership


class Listed(NamedTuple):
    """A line of the confirmation page with its own list under it (the benefits, what expires)."""

    text: str
    items: list[str]


def _benefit_lines(tier: Tier) -> list[str]:
    return [f"{b.service.format_quantity(b.quantity_per_cycle)} {b.service.name} per {tier.interval} "
            f"({b.rollover_in_words})"
            for b in TierBenefit.objects.filter(tier=tier).select_related("service").order_by("service__name")]


def _processor_changes(member: Member) -> bool:
    """Whether the ledger changes the subscription itself at the automation stage of the member's
    home location (else the practice's)."""
    return stage_at_least_for(member, AutomationStage.TIER_SYNC)


def _automation_off(member: Member) -> str:
    """Why the ledger leaves the subscription alone, in words a front desk reads: the stage by its name
    alone ("Observe"), not its code or its description in parentheses."""
    name = AutomationStage(member_stage(member)).label.split(" (")[0]
    return f"Automatic subscription changes are off for this practice (automation stage “{name}”)"


def _card_link_note(member: Member) -> str:
    if _processor_changes(member):
        return ("Next: open the member's card link (the \"Card link\" button on the chart): the member enters "
                "the card on the processor's secure page, never here, and the first payment starts it.")
    return f"{_automation_off(member)}: take the card and start the subscription in the processor's dashboard."


def explain_enroll(*, member: Member, tier: Tier) -> list[str | Listed]:
    price = price_of(tier, pricing_location(member=member, tier=tier))      # the home location's own price
    return [
        f"{member.full_name} joins {tier.name} at {price.display}.",
        Listed("The membership is pending until the first payment succeeds; that payment fills the balances:",
               _benefit_lines(tier)),
        _card_link_note(member),
    ]


def _by_hand(member: Member, what: str) -> str:
    return f"{_automation_off(member)}: {what} in the processor's dashboard."


_PRORATION = {
    "none": "the new price is charged from the next invoice; nothing is charged or credited for the rest "
            "of this period",
    "create_prorations": "the difference for the rest of this period is added to the next invoice",
    "always_invoice": "the difference for the rest of this period is invoiced at once",
}


def explain_change_tier(*, membership, new_tier: Tier, effective: str) -> list[str | Listed]:
    # what the member pays now, and for the new tier at their home location (the door prices it so)
    old = membership_price(membership)
    new = price_of(new_tier, change_pricing_location(membership=membership, tier=new_tier, effective=effective))
    ends = membership.current_period_end     # the practice's calendar day, not UTC's
    renewal = f" on {membership.member.practice.local_date(ends):%b %d, %Y}" if ends else ""
    check_interval_change(membership=membership, new_tier=new_tier)   # refused before the confirmation
    lines = []
    if effective == "now":
        lines.append(f"{new_tier.name} starts now; the price goes from {old.display} to {new.display}.")
        if _processor_changes(membership.member):
            proration = settings.STRIPE_PRORATION_BEHAVIOR
            lines.append(square_billing(membership=membership, new_tier=new_tier, effective=effective)
                         if on_square(membership)
                         else f"Billing: {_PRORATION.get(proration, proration.replace('_', ' '))}.")
        else:
            lines.append(_by_hand(membership.member, f"change the price to {new.display}"))
        lines.append("Balances already granted stay usable until the next renewal.")
    else:
        lines.append(f"The price stays {old.display} until the renewal{renewal}, then becomes {new.display}.")
        if on_square(membership, syncing=True):
            lines.append(square_billing(membership=membership, new_tier=new_tier, effective=effective))
        if not _processor_changes(membership.member):
            lines.append(_by_hand(membership.member, f"schedule the price change to {new.display} at the renewal"))
    lines.append(Listed(f"From the next renewal on, {new_tier.name}'s benefits and rules apply:",
                        _benefit_lines(new_tier)))
    expiring = {sid: q for sid, q in preview_next_boundary(membership=membership, tier=new_tier).items() if q > 0}
    if expiring:
        services = sorted(Service.objects.in_bulk(list(expiring)).values(), key=lambda sv: sv.name)
        lines.append(Listed(f"At that renewal, under {new_tier.name}'s rules, these expire if still unused:",
                            [f"{service.name}: {service.format_quantity(expiring[service.pk])}" for service in services]))
    else:
        lines.append("Nothing the member holds now expires at that renewal because of the change.")
    return lines


def explain_pause(*, membership, until) -> list[str]:
    held = Reservation.objects.filter(membership=membership, status=ReservationStatus.HELD).count()
    lines = [f"The membership is paused until {until:%b %d, %Y}: no refills and no redemptions while paused; "
             "it resumes by itself on that date."]
    if _processor_changes(membership.member):
        lines.append("The processor stops collecting until then.")
    else:
        lines.append(_by_hand(membership.member, f"pause collection until {until:%b %d, %Y}") +
                     " Until then the card keeps being charged.")
    lines.append("Balances stay as they are and are usable again after the pause.")
    if held:
        lines.append(f"{held} booked hold{'s' if held != 1 else ''} will be released.")
    return lines


def explain_resume(*, membership) -> list[str]:
    lines = [f"The membership becomes active again at {membership_price(membership).display}."]
    if _processor_changes(membership.member):
        lines.append("The processor resumes collecting on its schedule.")
    else:
        lines.append(_by_hand(membership.member, "resume collection"))
    lines.append("Balances are usable at once; the next refill comes with the next successful charge.")
    return lines


def explain_cancel(*, membership, now) -> list[str | Listed]:
    practice = membership.member.practice
    end = membership.current_period_end if membership.current_period_end and membership.current_period_end > now else None
    if _processor_changes(membership.member):
        lines = [f"{membership.tier.name} ({membership_price(membership).display}) ends now; the subscription is "
                 "cancelled: no further charges."]
    else:
        lines = [f"{membership.tier.name} ({membership_price(membership).display}) ends now in the ledger.",
                 _by_hand(membership.member, "cancel the subscription") + " Until then the card keeps being charged."]
    balances = [line for line in selectors.balance_lines(membership=membership) if line.balance > 0]
    if balances:
        lines.append(Listed("These balances are frozen (kept on record, not deleted):",
                            [f"{line.service_name}: {line.balance_display}" for line in balances]))
        if practice.frozen_credit_usable_until_period_end and end:
            lines.append(f"Frozen credit stays usable until the paid period ends on "
                         f"{practice.local_date(end):%b %d, %Y}, then expires.")
        else:
            lines.append("Frozen credit can no longer be used.")
    else:
        lines.append("There is no balance left to freeze.")
    return lines


def _confirm_flow(request, *, member, form, title, action, explain, perform, key,
                  template="memberships/action.html", extra=None):
    """GET shows the form; POST shows the confirmation page; POST with `confirm` runs the service:
    `perform(data, key)` calls its door's `.outcome(...)` and returns (message, outcome). `key(data)` is
    the idempotency key (built from the form token): confirming twice does it once, and says so."""
    context = {"member": member, "form": form, "title": title, "action": action, **(extra or {})}
    if getattr(member, "pk", None) and not (request.method == "POST" and "confirm" in request.POST):
        audit_view(request, action=f"{action}_page", members=[member])  # the page names the member
    if request.method != "POST":
        return render(request, template, context)
    if not form.is_valid():
        return render(request, template, context, status=400)
    if "confirm" not in request.POST:
        try:
            context["consequences"] = explain(form.cleaned_data)
        except LedgerError as exc:
            form.add_error(None, exc.message)
            return render(request, template, context, status=400)
        return render(request, "memberships/confirm.html", context)
    try:
        message, done = perform(form.cleaned_data, key(form.cleaned_data))
    except LedgerError as exc:
        form.add_error(None, exc.message)
        return render(request, template, context, status=400)
    if done.replayed:
        messages.info(request, "That was already done; nothing changed.")
    else:
        messages.success(request, message)
    return redirect("memberships:chart", member_id=done.result.member_id)


def _actor(request) -> services.Actor:
    return services.Actor.staff(request.user, ip_address=client_ip(request))


def _tier(practice_id: int, tier_id: int) -> Tier:
    tier = Tier.objects.filter(practice_id=practice_id, pk=tier_id).first()
    if tier is None:
        raise LedgerError("Choose an active tier of this practice.")
    return tier


def _form(request, form_class, **kwargs):
    if request.method == "POST":
        return form_class(request.POST, **kwargs)
    return form_class(initial={"token": new_form_token()}, **kwargs)


@staff_page("manage_membership")
def enroll_new(request):
    """Register a new member and enroll them in a tier."""
    practice = practice_for(request.user)
    form = _form(request, NewMemberForm, practice_id=practice.pk)
    placeholder = Member(practice=practice)

    def explain(data):
        new = Member(practice=practice, first_name=data["first_name"], last_name=data["last_name"])
        return explain_enroll(member=new, tier=_tier(practice.pk, data["tier"]))

    def perform(data, key):
        done = enroll_new_member.outcome(
            practice=practice, first_name=data["first_name"], last_name=data["last_name"], email=data["email"],
            phone=data["phone"], sms_consent=data["sms_consent"], tier=_tier(practice.pk, data["tier"]),
            actor=_actor(request), idempotency_key=key, now=timezone.now())
        member = done.result.member
        return f"{member.full_name} ({member.member_number}) enrolled in {done.result.tier.name}.", done

    return _confirm_flow(request, member=placeholder, form=form, title="New member", action="enroll",
                         explain=explain, perform=perform, key=lambda data: f"staff:member:{data['token']}")


@staff_page("manage_membership")
def enroll(request, member_id: int):
    member = _member(request, member_id)
    form = _form(request, EnrollForm, practice_id=member.practice_id)

    def explain(data):
        if _open_membership(member) is not None:
            raise LedgerError("This member already has an open membership; change its tier instead.")
        return explain_enroll(member=member, tier=_tier(member.practice_id, data["tier"]))

    def perform(data, key):
        done = services.enroll_member.outcome(
            member=member, tier=_tier(member.practice_id, data["tier"]), actor=_actor(request),
            idempotency_key=key, now=timezone.now())
        return f"{member.full_name} enrolled in {done.result.tier.name}.", done

    return _confirm_flow(request, member=member, form=form, title=f"Enroll {member.full_name}", action="enroll",
                         explain=explain, perform=perform, key=lambda data: f"staff:enroll:{member.pk}:{data['token']}")


def _require_open(member, request):
    """The member's open membership, else 404 — except for a confirmation posted again after it
    closed the membership (cancel, then the browser's Back): that goes to the door with the latest
    membership, which answers a replay ("already done") or refuses (a form error)."""
    membership = _open_membership(member)
    if membership is not None:
        return membership
    latest = selectors.current_membership(member=member)
    if latest is not None and request.method == "POST" and "confirm" in request.POST:
        return latest
    raise Http404("No open membership")


@staff_page("manage_membership")
def change_tier(request, member_id: int):
    member = _member(request, member_id)
    membership = _require_open(member, request)
    form = _form(request, ChangeTierForm, practice_id=member.practice_id, current_tier_id=membership.tier_id)

    def explain(data):
        return explain_change_tier(membership=membership, new_tier=_tier(member.practice_id, data["tier"]),
                                   effective=data["effective"])

    def perform(data, key):
        new_tier = _tier(member.practice_id, data["tier"])
        done = services.change_tier.outcome(membership=membership, new_tier=new_tier, effective=data["effective"],
                                            actor=_actor(request), idempotency_key=key, now=timezone.now())
        when = "now" if data["effective"] == "now" else "at the next cycle"
        return f"Tier changes to {new_tier.name} {when}.", done

    return _confirm_flow(request, member=member, form=form, title=f"Change tier — {member.full_name}",
                         action="change_tier", explain=explain, perform=perform,
                         key=lambda data: f"staff:change_tier:{membership.pk}:{data['token']}",
                         extra={"membership": membership})


@staff_page("manage_membership")
def pause(request, member_id: int):
    member = _member(request, member_id)
    membership = _require_open(member, request)
    form = _form(request, PauseForm, today=member.practice.local_date(timezone.now()))

    def explain(data):
        if membership.status != MembershipStatus.ACTIVE:
            raise LedgerError(f"Only an active membership can be paused; this one is "
                              f"{membership.get_status_display().lower()}.")
        return explain_pause(membership=membership, until=data["until"])

    def perform(data, key):
        done = services.pause_membership.outcome(membership=membership, until=data["until"], reason=data["reason"],
                                                 actor=_actor(request), idempotency_key=key, now=timezone.now())
        return f"Paused until {data['until']:%b %d, %Y}.", done

    return _confirm_flow(request, member=member, form=form, title=f"Pause — {member.full_name}", action="pause",
                         explain=explain, perform=perform,
                         key=lambda data: f"staff:pause:{membership.pk}:{data['token']}", extra={"membership": membership})


@staff_page("manage_membership")
def resume(request, member_id: int):
    member = _member(request, member_id)
    membership = _require_open(member, request)
    form = _form(request, ConfirmOnlyForm)

    def explain(data):
        if membership.status != MembershipStatus.PAUSED:
            raise LedgerError("Only a paused membership can be resumed.")
        return explain_resume(membership=membership)

    def perform(data, key):
        done = services.resume_membership.outcome(membership=membership, actor=_actor(request),
                                                  idempotency_key=key, now=timezone.now())
        return "Membership resumed.", done

    return _confirm_flow(request, member=member, form=form, title=f"Resume — {member.full_name}", action="resume",
                         explain=explain, perform=perform,
                         key=lambda data: f"staff:resume:{membership.pk}:{data['token']}", extra={"membership": membership})


@staff_page("manage_membership")
def cancel(request, member_id: int):
    member = _member(request, member_id)
    membership = _require_open(member, request)
    form = _form(request, CancelForm)

    def explain(data):
        return explain_cancel(membership=membership, now=timezone.now())

    def perform(data, key):
        done = services.cancel_membership.outcome(membership=membership, reason=data["reason"],
                                                  actor=_actor(request), idempotency_key=key, now=timezone.now())
        return "Membership cancelled; the balance is frozen.", done

    return _confirm_flow(request, member=member, form=form, title=f"Cancel — {member.full_name}", action="cancel",
                         explain=explain, perform=perform,
                         key=lambda data: f"staff:cancel:{membership.pk}:{data['token']}", extra={"membership": membership})
