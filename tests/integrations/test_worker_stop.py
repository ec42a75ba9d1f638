"""A qcluster asked to stop (SIGTERM to its process, as `docker stop`, Kubernetes or `kill` send it)
exits by itself without working off its backlog in the inbox: the inbox drain stops between two
batches and hands the rest back, so a stop waits for the batch in hand, not for the backlog (which
here lasts more than 20 s, past a process manager's usual 10 s grace). Nothing is half-applied:
every event is either processed, with its refill, or still received, with nothing of it written, and
a later run processes the rest exactly once. How long the stop took is printed, not asserted: on a
busy machine the same stop takes longer."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from django_q.tasks import async_task

from billing.models import Invoice
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, LedgerEntry, Membership, MembershipStatus
from tests.support.stripe_events import store_first_invoices
from tests.support.waiting import PATIENCE, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
N = 150
CHARGE_SECONDS = 0.3        # each charge lingers this long in the database: the backlog lasts 20 s or more


@pytest.fixture
def slow_charges():
    """Every invoice row takes CHARGE_SECONDS to insert (a trigger in this test's database only), so a
    SIGTERM lands while most of the backlog is still to do."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_slow_charge() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({CHARGE_SECONDS}); RETURN NEW; END $$")
        cursor.execute("CREATE TRIGGER test_slow_charge BEFORE INSERT ON billing_invoice "
                       "FOR EACH ROW EXECUTE FUNCTION test_slow_charge()")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_slow_charge ON billing_invoice")
        cursor.execute("DROP FUNCTION IF EXISTS test_slow_charge()")


def qcluster(log: Path) -> subprocess.Popen:
    """`manage.py qcluster` on this test's database (ORM broker), in a process group of its own."""
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.test", Q_BROKER="orm", Q_WORKERS="2",
               INBOX_BATCH_SIZE="10", LOG_LEVEL="INFO", DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def processed() -> int:
    return InboundEvent.objects.filter(status=InboundStatus.PROCESSED).count()


def test_sigterm_with_a_backlog_stops_within_10_s_and_leaves_nothing_half_applied(glow, slow_charges, tmp_path):
    tier, facial, credit = glow
    now = timezone.now()
    store_first_invoices(tier, N, tag="stop", now=now)
    for _ in range(4):      # drains queued meanwhile by the web processes and the minute sweep
        async_task("integrations.tasks.process_inbound_backlog", group="inbox")

    log = tmp_path / "qcluster.log"
    cluster = qcluster(log)
    try:
        assert wait_until(lambda: processed() >= 10), log.read_text()[-3000:]
        at_signal = processed()
        cluster.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        stopped = wait_until(lambda: cluster.poll() is not None and group_gone(cluster.pid))
        took = time.monotonic() - asked
    finally:
        if not group_gone(cluster.pid):
            os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait(timeout=PATIENCE)
    print(f"qcluster stopped {took:.2f} s after SIGTERM, {at_signal} then {processed()} of {N} processed")
    assert stopped, log.read_text()[-3000:]                  # by itself, not by the SIGKILL above
    assert cluster.returncode == 0

    # The stop did not wait for the backlog; nothing half-applied: a processed event has its invoice
    # and one refill, a received one nothing.
    done = processed()
    assert done < N, "the cluster worked off the whole backlog before it stopped"
    assert InboundEvent.objects.filter(status=InboundStatus.RECEIVED).count() == N - done
    assert not InboundEvent.objects.filter(status=InboundStatus.FAILED).exists()
    assert Invoice.objects.count() == done
    assert LedgerEntry.objects.filter(kind="grant").count() == 2 * done
    assert Membership.objects.filter(status=MembershipStatus.ACTIVE, cycle_number=1).count() == done
    # ...and the rest was handed back to the queue for the next worker.
    assert "integrations.tasks.process_inbound_backlog" in {q.func() for q in OrmQ.objects.all()}

    # The next run processes the rest, each exactly once.
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_slow_charge ON billing_invoice")
    while inbox.process_due(now=timezone.now()):
        pass
    assert processed() == N
    assert LedgerEntry.objects.filter(kind="grant").count() == 2 * N
    for m in Membership.objects.all():
        assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1
        assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1
        assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 5000
