"""Moments a test can pass as `now` that do not depend on the hour the suite runs at."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def next_daytime(moment: datetime, *, zone: str = "America/Los_Angeles", at: time = time(10)) -> datetime:
    """The first `at` (10:00 by default) in `zone` at or after `moment`: a time of day outside any
    practice's quiet hours (no SMS 21:00–08:00), whatever the hour the test runs at."""
    local = moment.astimezone(ZoneInfo(zone))
    candidate = datetime.combine(local.date(), at, tzinfo=local.tzinfo)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=local.tzinfo)
    return candidate


def clear_of_month_start(moment: datetime, *, zone, margin: timedelta = timedelta(minutes=15)) -> datetime:
    """`moment`, or, when it falls less than `margin` after the start of its month in `zone` (a
    ZoneInfo or its name), the moment `margin` after that start: a test that writes things up to
    `margin` before the clock and reads them back as "this month" holds whenever it runs. Move the
    clock there (`time_machine.move_to(..., tick=True)`): at most `margin` ahead of the real one."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    local = moment.astimezone(zone)
    start = datetime.combine(local.date().replace(day=1), time(), tzinfo=zone)
    return max(moment, start + margin)
