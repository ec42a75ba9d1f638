"""Moving a member's home location: the one door. The home location decides which clinic's stage and
record apply to the member and, at their next enrollment or tier change, which location's price.
Balances, entries and the timeline belong to the membership, not the location: they stay as they are.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet

from memberships.errors import IllegalTransition, NotAllowed
from memberships.models import EventKind, Location, Member, Practice

from .common import Actor, record_event, write_audit
from .idempotency import idempotent


def home_locations_for(practice: Practice) -> QuerySet[Location]:
    """Where a member of `practice` may be at home: the active locations of its organization, or of
    the practice when it is on its own."""
    locations = Location.objects.filter(active=True).select_related("practice")
    if practice.organization_id:
        return locations.filter(practice__organization_id=practice.organization_id).order_by("practice__name", "name")
    return locations.filter(practice=practice).order_by("name", "id")


@idempotent("move_home_location")
def move_home_location(*, member: Member, location: Location, actor: Actor, idempotency_key: str,
                       now: datetime) -> Member:
    """Make `location` the member's home. Refused (nothing changes) for a location outside the member's
    organization (or practice), an inactive one, or the one they have. One timeline event and one audit
    row; only `Member.home_location` changes."""
    with transaction.atomic():
        # Lock the member alone, then read the home location: joined in the locking query, PostgreSQL
        # re-checks a row changed while we waited against the location it joined before, and a
        # concurrent move's "from" read as none.
        locked = Member.objects.select_for_update().get(pk=member.pk)
        locked.home_location = (Location.objects.get(pk=locked.home_location_id)
                                if locked.home_location_id else None)
        if not home_locations_for(locked.practice).filter(pk=location.pk).exists():
            raise NotAllowed("Choose an active location of the member's group.")
        if locked.home_location_id == location.pk:
            raise IllegalTransition(f"{location.name} is already the member's home location.")
        old = locked.home_location
        Member.objects.filter(pk=locked.pk).update(home_location=location)
        locked.home_location = location
        old_name = old.name if old is not None else "none"
        record_event(member=locked, kind=EventKind.NOTE, actor=actor, now=now,
                     summary=f"Home location changed from {old_name} to {location.name}",
                     payload={"change": "home_location", "from_location_id": old.pk if old is not None else None,
                              "to_location_id": location.pk})
        write_audit(actor=actor, action="home_location_changed", obj=locked, member=locked, now=now,
                    detail={"from": old.pk if old is not None else None, "to": location.pk})
    return locked
