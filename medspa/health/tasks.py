"""The worker's heartbeat (scheduled every minute by `HealthConfig`)."""

from __future__ import annotations

from django.utils import timezone

from .services import record_heartbeat


def beat() -> str:
    return record_heartbeat(now=timezone.now()).beat_at.isoformat()
