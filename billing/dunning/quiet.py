"""Quiet hours: no SMS between the practice's quiet_hours_start and quiet_hours_end (default
21:00–08:00) in the member's local time (their home location's zone, else the practice's)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from memberships.models import Member


def _as_time(value) -> time:
    if isinstance(value, time):
        return value
    return time.fromisoformat(str(value))


def member_zone(member: Member) -> ZoneInfo:
    location = member.home_location
    name = (location.timezone if location is not None and location.timezone else "") or member.practice.timezone
    return ZoneInfo(name or "UTC")


def quiet_until(*, member: Member, now: datetime) -> datetime | None:
    """When quiet hours end, if `now` is inside them for this member; None when SMS may go now."""
    practice = member.practice
    start, end = _as_time(practice.quiet_hours_start), _as_time(practice.quiet_hours_end)
    if start == end:
        return None
    zone = member_zone(member)
    local = now.astimezone(zone)
    t = local.time()
    if start < end:  # e.g. 12:00–14:00 the same day
        inside = start <= t < end
        end_date = local.date()
    else:  # across midnight, e.g. 21:00–08:00
        inside = t >= start or t < end
        end_date = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_date, end, tzinfo=zone)
