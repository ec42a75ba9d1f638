"""A worker killed with SIGKILL half-way through the backlog loses nothing: after a restart every
stored webhook is processed, and every balance refilled exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, EventKind, LedgerEntry, Membership
from tests.support.stripe_events import store_first_invoices

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
N = 30


def worker(*args):
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.test",
               DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    return subprocess.Popen([sys.executable, "-m", "tests.support.inbox_worker", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def processed():
    return InboundEvent.objects.filter(status=InboundStatus.PROCESSED).count()


def test_sigkill_mid_batch_then_restart_processes_everything_once(glow):
    tier, facial, credit = glow
    now = timezone.now()
    store_first_invoices(tier, N, tag="crash", now=now)

    first = worker("--slow", "0.2")
    deadline = time.monotonic() + 60
    while processed() < N // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)                                     # well inside the next charge's transaction
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = processed()
    assert N // 3 <= killed_at < N

    second = worker()
    assert second.wait(timeout=120) == 0

    assert processed() == N
    assert InboundEvent.objects.filter(attempts__gt=1).count() <= 1     # at most the one killed mid-way
    for m in Membership.objects.all():
        assert m.cycle_number == 1 and m.status == "active"
        assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1
        assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 5000
    assert LedgerEntry.objects.filter(kind="grant").count() == 2 * N
    assert m.events.filter(kind=EventKind.REFILLED).count() == 1
