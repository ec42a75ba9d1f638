"""Every section of the manager dashboard's figures, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from django.utils import timezone

from memberships.models import Practice

from .credit import Breakage, Liability, ServiceAmount, breakage_by_month, credit_liability, redemptions_per_service
from .members import MembersOverTime, members_by_tier_over_time
from .payback import PaybackWeek, StaffTimeSaved, payback_weeks, practice_zone, staff_time_saved
from .payments import FailedRecovered, failed_vs_recovered
from .requests import cancellation_reasons


@dataclass
class Dashboard:
    members: MembersOverTime
    money: FailedRecovered
    redemptions: list[ServiceAmount]
    liability: Liability
    breakage: Breakage
    payback: list[PaybackWeek]
    staff_time: StaffTimeSaved | None = None
    cancellation_reasons: list[tuple[str, int]] = field(default_factory=list)


def dashboard(*, practice_id: int | None, now: datetime, months: int = 12, zone: tzinfo | None = None) -> Dashboard:
    """`zone`: the practice's time zone (read once here when not given), which every month and week
    follows: members and MRR, failed and recovered, breakage, the payback weeks, staff time."""
    if zone is None:
        zone = practice_zone(Practice.objects.filter(pk=practice_id).first() if practice_id is not None else None)
    with timezone.override(zone):       # every month of every chart in the practice's zone
        members = members_by_tier_over_time(practice_id=practice_id, now=now, months=months)
        money = failed_vs_recovered(practice_id=practice_id, now=now, months=months)
    return Dashboard(
        members=members,
        money=money,
        redemptions=redemptions_per_service(practice_id=practice_id, now=now),
        liability=credit_liability(practice_id=practice_id),
        breakage=breakage_by_month(practice_id=practice_id, now=now, months=months, zone=zone),
        payback=payback_weeks(practice_id=practice_id, now=now, zone=zone),
        staff_time=staff_time_saved(practice_id=practice_id, now=now, months=months, zone=zone),
        cancellation_reasons=cancellation_reasons(practice_id=practice_id, now=now),
    )
