"""What the inbox and the outbox share: work kept as rows with a status, an attempt count and a next
attempt, taken by any number of workers (SKIP LOCKED) and retried with backoff; a drain that takes
batches until nothing is due, stopping early when the cluster is (`integrations.stopping`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from django.db import OperationalError

from . import stopping


def backoff(attempts: int, *, base: float, cap: float) -> timedelta:
    """Exponential backoff with jitter: base·2^(n-1), capped, drawn from its upper half, so retries
    of many rows spread out instead of arriving together."""
    ceiling = min(cap, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass
class Sweep:
    """What one drain did: counts per outcome, seconds spent in batches, and whether it stopped for
    the cluster's stop."""

    total: dict[str, int] = field(default_factory=dict)
    busy: float = 0.0
    stopped: bool = False

    @property
    def handled(self) -> int:
        return sum(self.total.values())

    def rate(self) -> str:
        return f"in {self.busy:.2f} s ({self.handled / self.busy:.0f}/s)" if self.busy > 0 else "in 0.00 s"


def drain(run_batch: Callable[[], dict[str, int]], *, seconds: float | None = None,
          recheck_after: float = 0.0) -> Sweep:
    """Run `run_batch` (one batch, its own transaction; returns counts, {} when nothing was due)
    until nothing is due, `seconds` have passed, or the cluster is stopping. `recheck_after` > 0:
    after finding nothing, look once more that much later (work committed while a batch ran)."""
    sweep = Sweep()
    deadline = time.monotonic() + seconds if seconds else None
    rechecked = False
    while deadline is None or time.monotonic() < deadline:
        if stopping.stop_requested():
            sweep.stopped = True
            break
        started = time.perf_counter()
        counts = run_batch()
        sweep.busy += time.perf_counter() - started
        for key, value in counts.items():
            sweep.total[key] = sweep.total.get(key, 0) + value
        if counts:
            rechecked = False
            continue
        if rechecked or recheck_after <= 0:
            break
        if stopping.sleep(recheck_after):
            sweep.stopped = True
            break
        rechecked = True
    return sweep


def is_lock_conflict(exc: BaseException) -> bool:
    """A deadlock, serialization failure or lock timeout the database broke, or SQLite's "database is
    locked": another worker held what this work needed — not the work's fault; it waits and is tried
    again."""
    cause = getattr(exc, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    return isinstance(exc, OperationalError) and (sqlstate in ("40P01", "40001", "55P03")
                                                  or "database is locked" in str(exc)
                                                  or "database table is locked" in str(exc))
