"""Field validators of the ledger's models."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    """The IANA time zone names this machine knows (its tz database)."""
    return frozenset(available_timezones())


def validate_time_zone(value: str) -> None:
    """An IANA time zone name such as America/Los_Angeles. Free text ("Pacific Time") is refused:
    quiet hours and dates are computed in this zone."""
    if value and value not in time_zone_names():
        raise ValidationError(
            "%(value)s is not an IANA time zone name; use one such as America/Los_Angeles or Europe/London.",
            code="invalid_time_zone", params={"value": value})
