"""A worker killed with SIGKILL half-way through the backlog loses nothing: after a restart every
stored webhook is processed, and every balance refilled exactly once."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, EventKind, LedgerEntry, Membership
from tests.support.stripe_events import store_first_invoices
from tests.support.waiting import PATIENCE

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

    first = worker("--hang-after", str(N // 3))
    assert first.stdout.readline() == b"inside\n"     # in the next charge's transaction, after N // 3
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=PATIENCE)
    killed_at = processed()
    assert killed_at == N // 3

    second = worker()
    assert second.wait(timeout=PATIENCE) == 0

    assert processed() == N
    assert InboundEvent.objects.filter(attempts__gt=1).count() <= 1     # at most the one killed mid-way
    for m in Membership.objects.all():
        assert m.cycle_number == 1 and m.status == "active"
        assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1
        assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 5000
    assert LedgerEntry.objects.filter(kind="grant").count() == 2 * N
    assert m.events.filter(kind=EventKind.REFILLED).count() == 1
