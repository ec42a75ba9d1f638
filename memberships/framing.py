"""Which page another site may frame. None, by default (X-Frame-Options DENY and CSP
frame-ancestors 'none' on every response); the compact chart panel — the ~400px chart an EHR shows
beside its own, for a member of the practice (`/members/<id>/?compact=1`) or of a sibling practice of
the group (`/visit/<id>/?compact=1`) — may be framed by the record the desk works in, and only by it:
the origins in settings.CHART_FRAME_ANCESTORS (the practice's record), or, at a location that runs a
record of its own, that record's origins (`Location.record_config["frame_ancestors"]`) alone."""

from __future__ import annotations

import re

from django.conf import settings

FRAME_ANCESTORS_KEY = "frame_ancestors"
ORIGIN = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?")


def record_frame_origins(location=None) -> list[str]:
    """The origins of the record the desk at `location` works in: a location's own record's (none
    listed: none), else the practice's record's (CHART_FRAME_ANCESTORS)."""
    if location is not None and location.record_adapter:
        listed = (location.record_config or {}).get(FRAME_ANCESTORS_KEY) or []
        return [origin for origin in listed if isinstance(origin, str) and ORIGIN.fullmatch(origin)]
    return list(settings.CHART_FRAME_ANCESTORS)


def framable_by_record(response, location=None):
    """Let the record the desk works in frame this response (`record_frame_origins`; nothing changes
    when it lists none). Browsers obey CSP frame-ancestors, which names the origins; X-Frame-Options
    cannot, so it is left off this response."""
    origins = record_frame_origins(location)
    if origins:
        response.xframe_options_exempt = True
        response._csp_replace = {"frame-ancestors": origins}  # django-csp's per-response replacement
    return response


def desk_location(user):
    """Where the staff user works now (their profile's location), or None."""
    profile = getattr(user, "staff_profile", None)
    return profile.location if profile is not None and profile.location_id else None
