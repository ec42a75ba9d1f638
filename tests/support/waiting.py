"""How long a test waits for another thread, process or server, and a wait that ends as soon as its
condition holds. The suite runs on a shared 2-core machine that may be busy: a thread or a child
process may not run for seconds, so a wait that is a failure when it runs out is long (PATIENCE),
and costs nothing more when things go well. No test measures how long something took."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

PATIENCE = 300.0


def wait_until(condition: Callable[[], T], *, seconds: float = PATIENCE, step: float = 0.05) -> T:
    """Poll `condition()` until it is true and return its value; after `seconds`, its last value
    (false: the caller asserts on it)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)
