"""The automation stage that governs an effect: per location, in one place.

A location may set its own stage (`Location.automation_stage`; a clinic that just joined the group
observes while the others sync tiers, or one clinic pilots tier sync ahead of its practice); empty
means the practice's. An effect that concerns one member — a chart flag, a card-update message, a
payment retry, a record write, a treatment the record reports, a processor call — follows the stage
of the member's home location, else the member's (billing) practice's. Practice-wide work (the join
page, the nightly reconciliation) follows the practice's stage.

Set-based code reads the same rule as a database expression (`effective_stage_expression`), joined
on the member's home location, never a query per member.
"""

from __future__ import annotations

from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf

from memberships.models import AutomationStage, Event, Location, Member, Membership, Practice


def effective_stage(practice: Practice, location: Location | None) -> str:
    """The location's own stage when it has one, else the practice's."""
    if location is not None and location.automation_stage:
        return location.automation_stage
    return practice.automation_stage


def at_least(current: str, stage: str) -> bool:
    """Whether `current` is `stage` or later on the rollout path."""
    return AutomationStage.rank(current) >= AutomationStage.rank(stage)


def member_stage(member: Member) -> str:
    """The stage for effects on this member: their home location's, else their practice's (reads
    `member.home_location` and `member.practice`: select them with the member in a loop)."""
    location = member.home_location if member.home_location_id else None
    return effective_stage(member.practice, location)


def stage_at_least_for(subject: Member | Membership, stage: str) -> bool:
    """Whether the member's (or the membership's member's) effective stage is `stage` or later."""
    member = subject.member if isinstance(subject, Membership) else subject
    return at_least(member_stage(member), stage)


def event_stage(event: Event) -> str:
    """The stage for a timeline event's effects: its member's (select `member__home_location`), else
    the event's practice's for an event of no member."""
    member = event.member if event.member_id else None
    location = member.home_location if member is not None and member.home_location_id else None
    return effective_stage(event.practice, location)


def location_stage_at_least(practice: Practice, location: Location | None, stage: str) -> bool:
    return at_least(effective_stage(practice, location), stage)


def effective_stage_expression(member_path: str = ""):
    """The member's effective stage as an expression, for `annotate()`: `member_path` leads from the
    queried model to the member ("" on Member, "member__" on Membership, "membership__member__"…)."""
    return Coalesce(NullIf(F(f"{member_path}home_location__automation_stage"), Value("")),
                    F(f"{member_path}practice__automation_stage"))


def stages_at_least(stage: str) -> list[str]:
    """The stages that are `stage` or later: `filter(stage__in=stages_at_least(...))`."""
    rank = AutomationStage.rank(stage)
    return [value for value in AutomationStage.values if AutomationStage.rank(value) >= rank]
