"""Where I work today: the page a staff member reaches after signing in (and from the header's
"Location: … — change"), listing the places they may choose (`memberships.services.locations`), the
one they worked at last preselected. With a single place it is chosen without asking; a practice
without locations never shows it. The choice is remembered in the session for the header, so the
header costs no query."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from memberships.services import Actor
from memberships.services.locations import (
    LocationNotAllowed, Place, choose_location, current_place, is_group_manager, places_for,
)

from .common import client_ip, staff_page

SESSION_KEY = "staff_place"


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def choice_url(next_url: str) -> str:
    return f"{reverse('memberships:choose_location')}?{urlencode({'next': next_url})}"


def after_sign_in(user, next_url: str) -> str:
    """Where the sign-in goes next: through the location page when the user has places to work at
    (it asks only when there is more than one), else straight on, as before locations existed."""
    return choice_url(next_url) if places_for(user) else next_url


def remember(request, place: Place, choices: int) -> None:
    request.session[SESSION_KEY] = {"label": place.label, "practice": place.practice_name,
                                    "location": place.location_name, "choices": choices,
                                    "group": is_group_manager(request.user)}


def _choose(request, key: str, places: list[Place]) -> Place:
    place = choose_location(user=request.user, place_key=key, now=timezone.now(),
                            actor=Actor.staff(request.user, ip_address=client_ip(request)))
    remember(request, place, len(places))
    return place


def _grouped(places: list[Place]) -> list[tuple[str, list[Place]]]:
    groups: dict[int, tuple[str, list[Place]]] = {}
    for place in places:
        groups.setdefault(place.practice_id, (place.practice_name, []))[1].append(place)
    return list(groups.values())


@never_cache
@staff_page("view_chart")
def choose(request):
    places = places_for(request.user)
    next_url = _next_url(request)
    if not places:
        return redirect(next_url)
    current = current_place(request.user.staff_profile, places)
    if len(places) == 1:
        if current is None:
            current = _choose(request, places[0].key, places)
        remember(request, current, 1)
        return redirect(next_url)
    error = None
    if request.method == "POST":
        try:
            place = _choose(request, request.POST.get("place", ""), places)
        except LocationNotAllowed as exc:
            error = exc.message
        else:
            messages.success(request, f"You are working at {place.label}"
                                      f"{'' if place.label == place.practice_name else f' ({place.practice_name})'}.")
            return redirect(next_url)
    return render(request, "memberships/choose_location.html", {
        "groups": _grouped(places), "current": current, "next": next_url, "error": error,
        "several_practices": len({p.practice_id for p in places}) > 1,
    }, status=400 if error else 200)
