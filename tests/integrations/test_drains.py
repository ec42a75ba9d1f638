"""The worker's drains (inbox events, outbox deliveries): one log line per sweep with counts and
rate, and no member data; a drain stops before its next batch when its cluster is stopping and
hands the rest back to the queue."""

import re
import signal
from types import SimpleNamespace

import pytest
from django.utils import timezone
from django_q.cluster import Cluster
from django_q.models import OrmQ

from integrations import inbox, stopping, tasks
from integrations.models import InboundEvent, InboundStatus
from memberships import services
from tests.factories import MemberFactory
from tests.support.stripe_events import load_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def stop_flag(monkeypatch):
    stopping.clear()
    monkeypatch.setattr(tasks, "_handed_back", {})
    yield
    stopping.clear()


@pytest.fixture
def stored(glow, settings):
    """Three first invoices of members with recognisable names, and one event whose subscription is
    not known yet (it waits, with backoff)."""
    settings.INBOX_TRIGGER_SECONDS = 0
    tier, _, _ = glow
    now = timezone.now()
    for i in range(3):
        member = MemberFactory(practice=tier.practice, first_name="Zelda", last_name=f"Quixote{i}",
                               email=f"zelda{i}@example.com")
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=f"e{i}",
                                   now=now, processor_subscription_id=f"sub_drain{i}")
        event = load_event("invoice_paid_first.json", membership=m, subscription_ref=f"sub_drain{i}",
                           event_suffix=f"_{i}")
        event["data"]["object"]["id"] += f"_{i}"
        inbox.store_event(source="stripe", event=event, handled=True, now=now)
    inbox.store_event(source="stripe", event=load_event("invoice_paid_first.json", subscription_ref="sub_unknown",
                                                        event_suffix="_unknown"), handled=True, now=now)
    OrmQ.objects.all().delete()         # the tasks the stores queued: this test runs the drain itself


def queued() -> list[str]:
    return [q.func() for q in OrmQ.objects.all()]


def test_a_sweep_logs_one_line_with_counts_and_rate_and_no_member_data(stored, caplog):
    caplog.set_level("INFO")
    assert tasks.process_inbound_backlog() == {"processed": 3, "received": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "integrations.tasks"]
    assert len(lines) == 1
    assert re.fullmatch(r"inbox sweep: 3 processed, 1 waiting, 0 failed in \d+\.\d\d s \(\d+/s\)", lines[0]), lines
    assert "Zelda" not in caplog.text and "Quixote" not in caplog.text and "example.com" not in caplog.text
    assert queued() == []


def test_a_drain_stops_before_its_next_batch_when_the_cluster_is_stopping(stored, monkeypatch, caplog):
    caplog.set_level("INFO")
    process_due = inbox.process_due

    def one_event_then_the_stop(*, now):
        counts = process_due(now=now, limit=1)
        stopping.request_stop()          # SIGTERM reaches the qcluster while this batch is applied
        return counts

    monkeypatch.setattr(inbox, "process_due", one_event_then_the_stop)
    assert tasks.process_inbound_backlog() == {"processed": 1}
    assert InboundEvent.objects.filter(status=InboundStatus.RECEIVED).count() == 3
    assert queued() == ["integrations.tasks.process_inbound_backlog"]        # the rest, handed back
    line = [r.getMessage() for r in caplog.records if r.name == "integrations.tasks"][-1]
    assert line.startswith("inbox sweep stopped (the cluster is stopping): 1 processed, 3 waiting, 0 failed")
    assert line.endswith("; the rest handed back to the queue")

    # The tasks the stopping worker had already pulled go back to the queue at once, untouched: the
    # last one it runs is never lost with it. A few times per worker process at most.
    OrmQ.objects.all().delete()
    for _ in range(5):
        assert tasks.process_inbound_backlog() == {}
        assert tasks.dispatch_deliveries() == {}
    assert sorted(queued()) == (["integrations.tasks.dispatch_deliveries"] * 3
                                + ["integrations.tasks.process_inbound_backlog"] * 2)


def test_the_clusters_stop_signal_raises_the_flag_then_stops_the_cluster_as_before():
    stops = []
    Cluster.sig_handler(SimpleNamespace(stop=lambda: stops.append("stop")), signal.SIGTERM, None)
    assert stopping.stop_requested() and stops == ["stop"]


def test_the_idle_recheck_wakes_when_the_cluster_stops():
    assert stopping.sleep(0.01) is False
    stopping.request_stop()
    assert stopping.sleep(30) is True
