"""What `/healthz` reports. Reads only; time is passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection

from .models import WorkerHeartbeat
from .services import cluster_name


@dataclass(frozen=True)
class Health:
    database: str                      # "ok" | "unreachable"
    last_heartbeat: datetime | None
    age_seconds: int | None
    max_age_seconds: int

    @property
    def worker(self) -> str:
        if self.last_heartbeat is None:
            return "missing"
        return "ok" if self.age_seconds <= self.max_age_seconds else "stale"

    @property
    def healthy(self) -> bool:
        return self.database == "ok" and self.worker == "ok"

    def as_json(self) -> dict:
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "database": self.database,
            "worker": {
                "status": self.worker,
                "last_heartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
                "age_seconds": self.age_seconds,
                "max_age_seconds": self.max_age_seconds,
            },
        }


def check_health(*, now: datetime) -> Health:
    """The database answers, and the worker's last heartbeat is at most HEALTHZ_WORKER_MAX_AGE_SECONDS
    old. Reads only; one query."""
    max_age = settings.HEALTHZ_WORKER_MAX_AGE_SECONDS
    try:
        beat_at = (WorkerHeartbeat.objects.filter(cluster=cluster_name())
                   .values_list("beat_at", flat=True).first())
    except DatabaseError:
        connection.close_if_unusable_or_obsolete()
        return Health(database="unreachable", last_heartbeat=None, age_seconds=None, max_age_seconds=max_age)
    age = None if beat_at is None else max(0, int((now - beat_at).total_seconds()))
    return Health(database="ok", last_heartbeat=beat_at, age_seconds=age, max_age_seconds=max_age)
