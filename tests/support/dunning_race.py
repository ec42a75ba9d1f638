"""The dunning run's sweep reads the failed invoices without a case, then opens their cases under the
memberships' locks. These put a webhook's commit (a payment, a void, a write-off) between the read
and the locks: in this thread, or on PostgreSQL in another worker's thread."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Callable

from billing import dunning
from billing.dunning import sweep
from tests.memberships.ledger_checks import hammer
from tests.support.waiting import PATIENCE


def webhook_after_the_sweeps_read(webhook: Callable[[], object], monkeypatch) -> None:
    """The next dunning run in this thread reads, then `webhook()` runs and commits (once), then the
    run goes on to lock and open."""
    real = sweep.failures_without_case
    landed = []

    def read_then_the_webhook_lands(**kwargs):
        found = real(**kwargs)
        if not landed:
            landed.append(webhook())         # the webhook's transaction commits before the sweep locks
        return found

    monkeypatch.setattr(sweep, "failures_without_case", read_then_the_webhook_lands)


def run_with_a_webhook_between_read_and_lock(webhook: Callable[[], object], monkeypatch, *, now: datetime) -> None:
    """Real threads (PostgreSQL): the dunning run at `now` reads the failures without a case and waits;
    the webhook's worker runs `webhook()` and commits; then the run locks and opens. Neither raises."""
    read, landed = threading.Event(), threading.Event()
    real = sweep.failures_without_case

    def read_then_wait(**kwargs):
        try:
            found = real(**kwargs)
        finally:
            read.set()
        assert landed.wait(timeout=PATIENCE)
        return found

    monkeypatch.setattr(sweep, "failures_without_case", read_then_wait)

    def worker(i):
        if i == 0:
            return dunning.run_dunning(now=now)
        assert read.wait(timeout=PATIENCE)
        try:
            return webhook()
        finally:
            landed.set()

    _, errors = hammer(worker, 2)
    assert errors == []
