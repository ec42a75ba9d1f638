"""Which page another site may frame. None, by default (X-Frame-Options DENY and CSP
frame-ancestors 'none' on every response); the compact chart panel — the ~400px chart an EHR shows
beside its own — may be framed by the origins in settings.CHART_FRAME_ANCESTORS, and only by them."""

from __future__ import annotations

from django.conf import settings


def framable_by_record(response):
    """Let the EHR origins listed in CHART_FRAME_ANCESTORS frame this response (nothing changes
    when none is listed). Browsers obey CSP frame-ancestors, which names the origins; X-Frame-Options
    cannot, so it is left off this response."""
    origins = list(settings.CHART_FRAME_ANCESTORS)
    if origins:
        response.xframe_options_exempt = True
        response._csp_replace = {"frame-ancestors": origins}  # django-csp's per-response replacement
    return response
