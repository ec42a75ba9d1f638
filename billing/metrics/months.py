"""What every metric shares: one practice, several (a group's) or all, and the calendar months a series runs over (in
the current time zone: the dashboard sets the practice's)."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone


def for_practice(qs, practice_id, path: str):
    """The rows of one practice (`path` leads to its id), or of several (a list, tuple or set of
    ids: a group's); all practices' when None."""
    if practice_id is None:
        return qs
    if isinstance(practice_id, (list, tuple, set, frozenset)):
        return qs.filter(**{f"{path}__in": list(practice_id)})
    return qs.filter(**{path: practice_id})


def month_starts(*, now: datetime, months: int) -> list[date]:
    """The first day of each of the last `months` months, oldest first, ending with this month."""
    today = timezone.localtime(now).date().replace(day=1)
    out = []
    y, m = today.year, today.month
    for _ in range(months):
        out.append(date(y, m, 1))
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return out[::-1]


def next_month(d: date) -> date:
    """The first day of the month after `d`'s."""
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def aware(d: date) -> datetime:
    """Midnight at the start of `d`, in the current time zone."""
    return timezone.make_aware(datetime(d.year, d.month, d.day))


def month_key(dt: datetime) -> date:
    """The month a moment falls in (its first day), in the current time zone."""
    return timezone.localtime(dt).date().replace(day=1)
