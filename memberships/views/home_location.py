"""The chart's "home location" form (front desk and managers): move a member's home to another active
location of the group, saying what happens to the price. Thin: the door does the change."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone

from memberships import selectors, services
from memberships.errors import LedgerError
from memberships.forms import TokenForm
from memberships.models import MembershipStatus
from memberships.services.home_location import home_locations_for, move_home_location
from memberships.services.location_prices import membership_price, price_of

from .common import audit_view, client_ip, new_form_token, staff_page
from .lifecycle import _member


class HomeLocationForm(TokenForm):
    location = forms.TypedChoiceField(label="New home location", coerce=int)

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["location"].choices = choices


def _label(location, practice) -> str:
    return location.name if location.practice_id == practice.pk else f"{location.name} ({location.practice.name})"


def price_words(membership, locations) -> list[str]:
    """What happens to the price, in words: nothing now; a location's own price from the next tier change."""
    if membership is None or membership.status == MembershipStatus.CANCELLED:
        return ["The member has no open membership: a new enrollment is priced at the new home location "
                "(its own price for the tier, if it has one)."]
    now = membership_price(membership)
    lines = [f"The price does not change now: the member keeps paying {now.display} for {membership.tier.name}. "
             "From the next tier change (or a new enrollment), the new home location's own price for the tier "
             "applies, if it has one."]
    for location in locations:
        there = price_of(membership.tier, location.pk)
        if there.location_id is not None and there.cents != now.cents:
            lines.append(f"At {location.name}, {membership.tier.name} costs {there.display}.")
    return lines


@staff_page("manage_membership")
def home_location(request, member_id: int):
    member = _member(request, member_id)
    everywhere = list(home_locations_for(member.practice))     # the current one too: a resubmitted form replays
    locations = [loc for loc in everywhere if loc.pk != member.home_location_id]
    choices = [(loc.pk, _label(loc, member.practice) + (" (now)" if loc.pk == member.home_location_id else ""))
               for loc in everywhere]
    form = (HomeLocationForm(request.POST, choices=choices) if request.method == "POST"
            else HomeLocationForm(initial={"token": new_form_token()}, choices=choices))
    membership = selectors.current_membership(member=member)
    context = {"member": member, "form": form, "current": member.home_location,
               "price_lines": price_words(membership, locations), "has_choices": bool(locations)}
    if request.method != "POST":
        audit_view(request, action="home_location_page", members=[member])
        return render(request, "memberships/home_location.html", context)
    if not form.is_valid():
        return render(request, "memberships/home_location.html", context, status=400)
    chosen = next(loc for loc in everywhere if loc.pk == form.cleaned_data["location"])
    try:
        done = move_home_location.outcome(
            member=member, location=chosen, now=timezone.now(),
            actor=services.Actor.staff(request.user, ip_address=client_ip(request)),
            idempotency_key=f"staff:home-location:{member.pk}:{form.cleaned_data['token']}")
    except LedgerError as exc:
        form.add_error(None, exc.message)
        return render(request, "memberships/home_location.html", context, status=400)
    if done.replayed:
        messages.info(request, "That was already done; nothing changed.")
    else:
        messages.success(request, f"Home location is now {chosen.name}.")
    return redirect("memberships:chart", member_id=member.pk)
