"""The rollout per location: a location may run its own automation stage (ahead of its practice, a
clinic piloting tier sync; or behind it, a clinic that just joined the group), or follow the
practice's. Moving it is a door with an audit row, as for the practice; what each location's next
stage would have done comes from the same shadow log, split by the members' home locations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from memberships.errors import IllegalTransition
from memberships.models import AutomationStage, Location, Practice
from memberships.services import Actor
from memberships.services.common import write_audit
from memberships.services.stages import effective_stage

from .stages import STAGES, ShadowEntry, next_stage

FOLLOW_PRACTICE = ""
ROWS_SHOWN = 50


def set_location_stage(*, location: Location, stage: str, actor: Actor, now: datetime, note: str = "") -> Location:
    """Set a location's own stage, or `FOLLOW_PRACTICE` ("") to follow the practice's again. Up one
    stage at a time from where the location is now (its own stage, else the practice's), back to any
    earlier stage at any time; ahead of the practice is allowed. Audited (from, to, both effective)."""
    if stage != FOLLOW_PRACTICE and stage not in STAGES:
        raise IllegalTransition(f"Unknown automation stage {stage!r}.")
    with transaction.atomic():
        locked = Location.objects.select_for_update().select_related("practice").get(pk=location.pk)
        before_own, before = locked.automation_stage, effective_stage(locked.practice, locked)
        if stage == before_own:
            raise IllegalTransition("The location is already at that stage." if stage else
                                    "The location already follows the practice's stage.")
        after = stage or locked.practice.automation_stage
        if STAGES.index(after) > STAGES.index(before) and after != next_stage(before):
            raise IllegalTransition("Move up one stage at a time.")
        Location.objects.filter(pk=locked.pk).update(automation_stage=stage)
        locked.automation_stage = stage
        write_audit(actor=actor, action="location_automation_stage_changed", obj=locked, now=now,
                    detail={"location_id": locked.pk, "from": before, "to": after, "own_from": before_own,
                            "own_to": stage, "note": note[:200]})
    return locked


@dataclass
class LocationRollout:
    """One location on the rollout page: its stage and what it held back."""

    location: Location
    stage: str                  # effective
    own: bool                   # its own stage (else the practice's)
    next: str | None
    next_shadow: list[ShadowEntry] = field(default_factory=list)     # what the next stage would have done
    later_shadow: list[ShadowEntry] = field(default_factory=list)    # held back for stages after it

    @property
    def label(self) -> str:
        return AutomationStage(self.stage).label

    @property
    def next_label(self) -> str:
        return AutomationStage(self.next).label if self.next else ""

    @property
    def shown(self) -> list[ShadowEntry]:
        return (self.next_shadow + self.later_shadow)[:ROWS_SHOWN]


def location_rollouts(*, practice: Practice, shadow: list[ShadowEntry]) -> list[LocationRollout]:
    """Each location of the practice with its effective stage and the shadowed effects of the members
    whose home it is, those its next stage would let through first."""
    rows = []
    for location in Location.objects.filter(practice=practice).order_by("name", "id"):
        stage = effective_stage(practice, location)
        upcoming = next_stage(stage)
        mine = [e for e in shadow if e.location_id == location.pk]
        rows.append(LocationRollout(
            location=location, stage=stage, own=bool(location.automation_stage), next=upcoming,
            next_shadow=[e for e in mine if e.stage == upcoming],
            later_shadow=[e for e in mine if e.stage != upcoming]))
    return rows


def following_practice(shadow: list[ShadowEntry], rollouts: list[LocationRollout]) -> list[ShadowEntry]:
    """The shadowed effects the practice's own stage held back: members with no home location, or a
    home location that follows the practice (a location with its own stage is shown on its own)."""
    own = {r.location.pk for r in rollouts if r.own}
    return [e for e in shadow if e.location_id not in own]
