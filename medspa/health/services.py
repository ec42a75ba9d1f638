"""The heartbeat's write. Time is passed in."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from .models import WorkerHeartbeat


def cluster_name() -> str:
    return str(settings.Q_CLUSTER.get("name", "default"))[:100]


def record_heartbeat(*, now: datetime) -> WorkerHeartbeat:
    """The worker was here at `now` (one row per cluster, overwritten)."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(cluster=cluster_name(), defaults={"beat_at": now})
    return heartbeat
