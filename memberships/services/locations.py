"""Where a staff member works: the places they may choose (at sign-in, or from the header's "change")
and the one door that records the choice.

A place is a location (a clinic) with its practice; a practice with no active location is a place of
its own (location empty), so a practice that has not set up locations works exactly as before. Staff
of a practice choose among their practice's active locations. A group manager (the "Group manager"
role, holding `view_group_dashboard`, with `StaffProfile.organization` set) chooses among every place
of every practice of the group; choosing a place of another practice moves `StaffProfile.practice`
there too, so every staff page (scoped by the profile's practice) follows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from django.db import transaction

from memberships.errors import NotAllowed
from memberships.models import Location, Practice, StaffProfile

from .common import Actor, write_audit


class LocationNotAllowed(NotAllowed):
    code = "location_not_allowed"

    def default_message(self) -> str:
        return "That location is not one you work at. Choose one of the list."


@dataclass(frozen=True)
class Place:
    """One choice: a location of a practice, or a practice without locations."""

    practice_id: int
    practice_name: str
    location_id: int | None
    location_name: str

    @property
    def key(self) -> str:
        """The form's value: `l<location id>`, or `p<practice id>` for a practice without locations."""
        return f"l{self.location_id}" if self.location_id is not None else f"p{self.practice_id}"

    @property
    def label(self) -> str:
        return self.location_name or self.practice_name


def is_group_manager(user, profile: StaffProfile | None = None) -> bool:
    """The group manager role and a group to manage (either alone is not enough)."""
    profile = profile if profile is not None else getattr(user, "staff_profile", None)
    return bool(profile is not None and profile.organization_id
                and user.has_perm("memberships.view_group_dashboard"))


def group_practice_ids(user) -> list[int]:
    """The practices a group manager manages (their group's); empty for anyone else."""
    profile = getattr(user, "staff_profile", None)
    if not is_group_manager(user, profile):
        return []
    return list(Practice.objects.filter(organization_id=profile.organization_id).order_by("name", "id")
                .values_list("id", flat=True))


def places_for(user, profile: StaffProfile | None = None) -> list[Place]:
    """What `user` may choose, grouped by practice (practices by name, locations by name). Empty for a
    practice without locations and for a user without a profile: nothing to choose. Two queries."""
    profile = profile if profile is not None else getattr(user, "staff_profile", None)
    if profile is None:
        return []
    if is_group_manager(user, profile):
        practices = list(Practice.objects.filter(organization_id=profile.organization_id)
                         .order_by("name", "id").values_list("id", "name"))
        locations = Location.objects.filter(active=True, practice__organization_id=profile.organization_id)
    else:
        practices = None
        locations = Location.objects.filter(active=True, practice_id=profile.practice_id)
    by_practice: dict[int, list[Place]] = {}
    for row in locations.order_by("practice__name", "practice_id", "name", "id").values_list(
            "id", "name", "practice_id", "practice__name"):
        location_id, name, practice_id, practice_name = row
        by_practice.setdefault(practice_id, []).append(Place(practice_id, practice_name, location_id, name))
    if practices is None:
        return [place for places in by_practice.values() for place in places]
    return [place for practice_id, name in practices
            for place in by_practice.get(practice_id) or [Place(practice_id, name, None, "")]]


def current_place(profile: StaffProfile, places: list[Place]) -> Place | None:
    """The place the profile works at now, when it is still one of `places`."""
    for place in places:
        if place.practice_id == profile.practice_id and place.location_id == profile.location_id:
            return place
    return None


@transaction.atomic
def choose_location(*, user, place_key: str, actor: Actor, now: datetime) -> Place:
    """The door: `user` works at the place `place_key` names from now on (remembered for their next
    sign-in). Sets `StaffProfile.location`, and `StaffProfile.practice` to the place's practice (a
    group manager moving to another practice of the group); writes the audit row, naming the place
    left and the place chosen. Choosing the place they already work at (every sign-in of someone who
    stays put) is not a move: nothing is written. The profile is locked first, so two requests at
    once that choose the same new place move it once and write one row. Raises LocationNotAllowed,
    changing nothing, for a place the user may not choose (another group's, another practice's, an
    inactive location)."""
    profile = StaffProfile.objects.select_for_update().filter(user_id=user.pk).first()
    if profile is None:
        raise LocationNotAllowed()
    place = next((p for p in places_for(user, profile) if p.key == place_key), None)
    if place is None:
        raise LocationNotAllowed(place=place_key)
    user.staff_profile = profile      # this request's pages follow the profile as it is now
    if (profile.practice_id, profile.location_id) == (place.practice_id, place.location_id):
        return place
    left = {"practice_id": profile.practice_id, "location_id": profile.location_id}
    profile.practice_id, profile.location_id = place.practice_id, place.location_id
    profile.save(update_fields=["practice", "location"])
    actor = replace(actor, location_id=place.location_id, practice_id=place.practice_id)   # the row: where now
    write_audit(actor=actor, action="location_chosen", obj=profile, now=now, detail={
        "practice_id": place.practice_id, "location_id": place.location_id,
        "from_practice_id": left["practice_id"], "from_location_id": left["location_id"]})
    return place
