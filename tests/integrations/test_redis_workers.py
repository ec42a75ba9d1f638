"""Several worker hosts: two `manage.py qcluster` processes with Q_BROKER=redis share Redis and
PostgreSQL. Mixed Stripe histories of a handful of memberships (first invoice paid, renewal paid,
renewal failed with the subscription past due, recovered) are stored through the inbox, which
queues their processing on Redis. One cluster is SIGKILLed mid-way and started again. No event is
doubled (each paid cycle refills once), none lost (all processed), none failed, and every
membership ends as the same history processed in order ends."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Task
from django_q.tasks import async_task

from billing.models import Invoice
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships import services
from memberships.models import EntitlementBalance, Event, EventKind, LedgerEntry
from tests.factories import MemberFactory
from tests.support.stripe_events import load_event
from tests.support.waiting import PATIENCE, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
PER_KIND = 6
INVOICE_SECONDS = 0.05      # each new invoice lingers this long in the database: a kill lands mid-way

FIRST = "invoice_paid_first.json"
RENEWAL_PAID = "invoice_paid_renewal_recovered.json"
RENEWAL_FAILED = "invoice_payment_failed_renewal.json"
PAST_DUE = "customer_subscription_updated_past_due.json"
ACTIVE = "customer_subscription_updated_active.json"

# Each kind of history in three waves, in the order Stripe sends them; the second cluster is killed
# during the second wave and the third is stored after its restart.
HISTORIES = {
    "first paid": ([FIRST], [], []),
    "renewed": ([FIRST], [RENEWAL_PAID], [ACTIVE]),
    "past due": ([FIRST], [RENEWAL_FAILED, PAST_DUE], []),
    "recovered": ([FIRST], [RENEWAL_FAILED, PAST_DUE], [RENEWAL_PAID, ACTIVE]),
}


def redis_or_skip():
    import redis

    client = redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc.__class__.__name__}); CI starts it")
    return client


@pytest.fixture
def redis_queue(monkeypatch):
    """This process queues on Redis like a web process with Q_BROKER=redis; the queue starts empty."""
    client = redis_or_skip()
    key = f"django_q:{Conf.CLUSTER_NAME}:q"
    client.delete(key)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    yield client
    client.delete(key)


@pytest.fixture
def slow_invoices():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION test_slow_invoice() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({INVOICE_SECONDS}); RETURN NEW; END $$")
        cursor.execute("CREATE TRIGGER test_slow_invoice BEFORE INSERT ON billing_invoice "
                       "FOR EACH ROW EXECUTE FUNCTION test_slow_invoice()")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_slow_invoice ON billing_invoice")
        cursor.execute("DROP FUNCTION IF EXISTS test_slow_invoice()")


class Host:
    """One worker host: `manage.py qcluster` on Redis and this test's database, in its own process group."""

    def __init__(self, name: str, logs: Path):
        self.name, self.logs, self.starts, self.process = name, logs, 0, None

    def start(self) -> "Host":
        db = connection.settings_dict
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.test", Q_BROKER="redis", REDIS_URL=REDIS_URL,
                   Q_WORKERS="2", INBOX_BATCH_SIZE="4", LOG_LEVEL="INFO", Q_LOG_LEVEL="INFO",
                   DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
        self.starts += 1
        self.log = self.logs / f"{self.name}-{self.starts}.log"
        self.process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                        start_new_session=True, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        return self

    def wait_running(self, timeout: float = PATIENCE) -> None:
        deadline = time.monotonic() + timeout
        while " running." not in self.log.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, self.tail()
            time.sleep(0.1)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=PATIENCE)

    def stop(self) -> tuple[bool, float]:
        """SIGTERM to the qcluster process: whether its whole process group went by itself, and in
        how many seconds (printed only: a busy machine stops it later)."""
        asked = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        gone = wait_until(lambda: self.process.poll() is not None and group_gone(self.process.pid))
        return bool(gone), time.monotonic() - asked

    def ensure_gone(self) -> None:
        if self.process is not None and not group_gone(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=PATIENCE)

    def drains_in_flight(self) -> int:
        """Inbox drains this host has started and not finished, by its log."""
        text = self.log.read_text()
        started = re.findall(r"processing (\S+) 'integrations\.tasks\.process_inbound_backlog'", text)
        return len(set(started) - set(re.findall(r"Processed 'integrations\.tasks\.process_inbound_backlog' \((\S+)\)",
                                                  text)))

    def tail(self) -> str:
        return f"{self.log.name}:\n" + self.log.read_text()[-3000:]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def event(name: str, membership, tag: str) -> dict:
    """The recorded event, made this membership's: its own subscription, invoice and event ids. A
    failed invoice carries its decline (as older API versions sent it), so no worker reads Stripe."""
    data = load_event(name, membership=membership, subscription_ref=f"sub_rw_{tag}", event_suffix=f"_{tag}")
    obj = data["data"]["object"]
    if obj["object"] == "invoice":
        obj["id"] += f"_{tag}"
    if data["type"] == "invoice.payment_failed":
        obj["last_payment_error"] = {"code": "card_declined", "decline_code": "insufficient_funds"}
    return data


def store(name: str, membership, tag: str) -> None:
    inbox.store_event(source="stripe", event=event(name, membership, tag), handled=True, now=timezone.now())


def state(membership) -> dict:
    """What the member and the manager see of a membership, with this test's ids taken out."""
    membership.refresh_from_db()
    return {
        "status": membership.status,
        "cycle": membership.cycle_number,
        "balances": sorted(EntitlementBalance.objects.filter(membership=membership)
                           .values_list("service__code", "balance", "reserved")),
        "entries": sorted(LedgerEntry.objects.filter(membership=membership)
                          .values_list("kind", "service__code", "quantity")),
        "refills": Event.objects.filter(membership=membership, kind=EventKind.REFILLED).count(),
        "invoices": sorted((ref.rsplit("_", 1)[0], status, paid) for ref, status, paid in Invoice.objects.filter(
            membership=membership).values_list("processor_invoice_id", "status", "amount_paid_cents")),
    }


def enroll(tier, tag: str):
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{tag}", now=timezone.now(),
                                  processor_subscription_id=f"sub_rw_{tag}")


def counts() -> Counter:
    return Counter(InboundEvent.objects.values_list("status", flat=True))


def test_two_qclusters_on_redis_one_killed_mid_way_process_every_event_exactly_once(
        glow, redis_queue, slow_invoices, tmp_path):
    tier, _, _ = glow

    # The reference: each history stored and processed in order, one event at a time, in this process.
    reference = {}
    for kind, waves in HISTORIES.items():
        m = enroll(tier, f"ref{len(reference)}")
        for name in [name for wave in waves for name in wave]:
            store(name, m, f"ref{len(reference)}")
            inbox.process_due(now=timezone.now())
        reference[kind] = state(m)
    assert {kind: (r["status"], r["cycle"], r["refills"]) for kind, r in reference.items()} == {
        "first paid": ("active", 1, 1), "renewed": ("active", 2, 2), "past due": ("past_due", 1, 1),
        "recovered": ("active", 2, 2)}
    redis_queue.delete(f"django_q:{Conf.CLUSTER_NAME}:q")   # their queued drains found nothing to do

    tags = [(kind, f"h{k}m{i}") for i in range(PER_KIND) for k, kind in enumerate(HISTORIES)]
    plans = [(kind, enroll(tier, tag), tag) for kind, tag in tags]
    before = InboundEvent.objects.count()
    expected_events = before + sum(
        len(wave) for kind, _, _ in plans for wave in HISTORIES[kind])

    hosts = [Host("a", tmp_path), Host("b", tmp_path)]
    try:
        for host in hosts:
            host.start()
        for host in hosts:
            host.wait_running()
        started = time.monotonic()

        for wave in (0, 1):
            for kind, m, tag in plans:
                for name in HISTORIES[kind][wave]:
                    store(name, m, tag)
        # A host dies (SIGKILL, its whole process group) once the workers are under way: one with an
        # inbox drain in hand, so the batch it was applying dies with it (unless, on a busy machine,
        # the two waves were all done before a drain was seen in hand).
        stored = InboundEvent.objects.count()
        wait_until(lambda: counts()[InboundStatus.PROCESSED] >= before + 8
                   and (any(host.drains_in_flight() for host in hosts)
                        or counts()[InboundStatus.PROCESSED] == stored), step=0.02)
        victim = next((host for host in hosts if host.drains_in_flight()), hosts[0])
        victim.kill()
        at_kill = counts()
        victim.start().wait_running()

        for kind, m, tag in plans:
            for name in HISTORIES[kind][2]:
                store(name, m, tag)

        # Everything processed. The periodic sweep (every minute in production) is the safety net for
        # a drain that died with its host; here it runs every few seconds of no progress.
        deadline, last, still = time.monotonic() + PATIENCE, None, time.monotonic()
        while time.monotonic() < deadline:
            now_counts = counts()
            if now_counts[InboundStatus.PROCESSED] == expected_events:
                break
            if now_counts != last:
                last, still = now_counts, time.monotonic()
            elif time.monotonic() - still > 3:
                async_task("integrations.tasks.process_inbound_backlog", group="inbox")
                still = time.monotonic()
            time.sleep(0.1)
        took = time.monotonic() - started
        stops = [host.stop() for host in hosts]
    finally:
        for host in hosts:
            host.ensure_gone()
    print(f"\nprocessed {expected_events} events in {took:.1f} s; host {victim.name} killed at {dict(at_kill)}; "
          f"stops took {', '.join(f'{s:.1f} s' for _, s in stops)}")

    final = counts()
    assert final == {InboundStatus.PROCESSED: expected_events}, (final, hosts[0].tail(), hosts[1].tail())
    assert before < at_kill[InboundStatus.PROCESSED] < expected_events, "the kill was meant to land mid-way"
    assert not Task.objects.filter(success=False).exists()
    assert all(gone for gone, _ in stops), stops                  # each host stopped by itself on SIGTERM
    for kind, m, tag in plans:
        assert state(m) == reference[kind], (kind, tag)
    # One refill per paid cycle, whatever the kill and the two hosts did.
    paid_cycles = sum(1 + (RENEWAL_PAID in HISTORIES[kind][1] + HISTORIES[kind][2]) for kind, _, _ in plans)
    assert LedgerEntry.objects.filter(kind="grant", membership__in=[m for _, m, _ in plans]).count() == 2 * paid_cycles
