"""Every section of the manager dashboard's figures, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from .credit import Breakage, Liability, ServiceAmount, breakage_by_month, credit_liability, redemptions_per_service
from .members import MembersOverTime, members_by_tier_over_time
from .payback import PaybackWeek, payback_weeks
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
    cancellation_reasons: list[tuple[str, int]] = field(default_factory=list)


def dashboard(*, practice_id: int | None, now: datetime, months: int = 12, zone: tzinfo | None = None) -> Dashboard:
    return Dashboard(
        members=members_by_tier_over_time(practice_id=practice_id, now=now, months=months),
        money=failed_vs_recovered(practice_id=practice_id, now=now, months=months),
        redemptions=redemptions_per_service(practice_id=practice_id, now=now),
        liability=credit_liability(practice_id=practice_id),
        breakage=breakage_by_month(practice_id=practice_id, now=now, months=months),
        payback=payback_weeks(practice_id=practice_id, now=now, zone=zone),
        cancellation_reasons=cancellation_reasons(practice_id=practice_id, now=now),
    )
