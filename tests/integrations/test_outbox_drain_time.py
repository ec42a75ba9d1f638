"""The outbox drain never runs into the end of its worker while a member message is with the
provider. django-q2 ends a task that runs past the cluster's timeout (Q_CLUSTER["timeout"]: an
alarm raises SystemExit inside it, wherever it is, and the guard then terminates the process), and
a process manager ends a stopping cluster's workers a few seconds after its SIGTERM; either, in the
middle of a send, leaves a message that "may have been sent" for a manager to check by hand. So the
drain begins no new delivery once OUTBOX_SWEEP_SECONDS have passed or the cluster is stopping: what
it has not begun waits, pending, for the next run.

The provider here takes a set number of seconds of a test clock per message; the worker is ended
when that clock passes its end, right after the provider accepted a message, as a real kill lands."""

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.core.mail.backends.locmem import EmailBackend
from django_q.models import OrmQ

from billing import dunning
from integrations import stopping, tasks
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
)

pytestmark = pytest.mark.django_db

Q_CLUSTER_TIMEOUT = 120             # medspa.settings: the task is ended past it
STOP_GRACE = 10                     # a process manager's wait between SIGTERM and SIGKILL


class WorkerEnded(BaseException):
    """The worker process ended (terminated, killed): no `except Exception` of ours sees it."""


class Clock:
    def __init__(self):
        self.seconds = 0.0
        self.ends_at = float(Q_CLUSTER_TIMEOUT)
        self.each, self.then = 0.0, None

    def __call__(self) -> float:
        return self.seconds

    def provider_took_it(self):
        """The provider has the message; its answer took `each` seconds, and the worker may end."""
        self.seconds += self.each
        if self.then is not None:
            self.then()
        if self.seconds > self.ends_at:
            raise WorkerEnded


CLOCK = Clock()


class SlowTwilio(sms.LocmemBackend):
    def send(self, **kwargs):
        result = super().send(**kwargs)
        CLOCK.provider_took_it()
        return result


class SlowSmtp(EmailBackend):
    def send_messages(self, messages):
        sent = super().send_messages(messages)
        CLOCK.provider_took_it()
        return sent


@pytest.fixture(autouse=True)
def stop_flag(monkeypatch):
    stopping.clear()
    monkeypatch.setattr(tasks, "_handed_back", {})
    yield
    stopping.clear()


@pytest.fixture
def clock(monkeypatch, settings):
    CLOCK.__init__()
    monkeypatch.setattr(tasks, "monotonic", CLOCK)
    monkeypatch.setattr(sms, "get_backend", SlowTwilio)
    settings.EMAIL_BACKEND = f"{__name__}.SlowSmtp"
    return CLOCK


@pytest.fixture
def backlog(member_factory):
    """Three members' card-update SMS and email, waiting to go."""
    for n in range(3):
        fail(member_factory(), invoice=f"in_backlog{n}", now=T0)
    dunning.run_dunning(now=T0)
    OrmQ.objects.all().delete()
    deliveries = Delivery.objects.filter(destination="member_message")
    assert deliveries.count() == 6
    return deliveries


def messages_sent():
    return len(sms.outbox) + len(mail.outbox)


def outcome(deliveries):
    return sorted(deliveries.values_list("status", flat=True))


def test_a_long_backlog_stops_before_the_clusters_timeout_ends_it_mid_send(backlog, clock, settings):
    settings.OUTBOX_SWEEP_SECONDS = 60
    clock.each = 50
    mail.outbox.clear()
    with time_machine.travel(T0, tick=False):
        tasks.dispatch_deliveries()
    assert messages_sent() == 2
    assert outcome(backlog) == [DeliveryStatus.DELIVERED] * 2 + [DeliveryStatus.PENDING] * 4

    for _ in range(2):                                          # the next minutes' runs
        clock.seconds = 0.0
        with time_machine.travel(T0, tick=False):
            tasks.dispatch_deliveries()
    assert len({m.to for m in sms.outbox}) == len(sms.outbox) == 3
    assert len({tuple(m.to) for m in mail.outbox}) == len(mail.outbox) == 3
    assert outcome(backlog) == [DeliveryStatus.DELIVERED] * 6


def test_a_stopping_cluster_takes_no_new_message_after_the_one_in_hand(backlog, clock):
    def sigterm_to_the_cluster():
        if not stopping.stop_requested():
            stopping.request_stop()
            clock.ends_at = clock.seconds + STOP_GRACE

    clock.each, clock.then = 5, sigterm_to_the_cluster
    mail.outbox.clear()
    with time_machine.travel(T0, tick=False):
        tasks.dispatch_deliveries()
    assert messages_sent() == 1
    assert outcome(backlog) == [DeliveryStatus.DELIVERED] + [DeliveryStatus.PENDING] * 5
    assert [q.func() for q in OrmQ.objects.all()] == ["integrations.tasks.dispatch_deliveries"]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's one writer; PostgreSQL locks rows")
def test_a_busy_database_spends_no_attempt_and_the_next_run_sends_it(backlog, monkeypatch):
    """SQLite (`make run`): one writer at a time, and a worker handing a message to a slow provider
    holds the write lock; another worker's drain that waited out the busy timeout did nothing to the
    message: no attempt is spent, no backoff, and the drain ends without an error."""
    from django.db import OperationalError

    from integrations import outbox

    deliver_one = outbox.deliver_one

    def database_busy(delivery_id, *, now):
        raise OperationalError("database is locked")

    mail.outbox.clear()
    monkeypatch.setattr(outbox, "deliver_one", database_busy)
    assert outbox.dispatch_due(now=T0) == {}
    assert set(backlog.values_list("status", "attempts", "next_attempt_at")) == {(DeliveryStatus.PENDING, 0, T0)}
    monkeypatch.setattr(outbox, "deliver_one", deliver_one)
    outbox.dispatch_due(now=T0)
    assert messages_sent() == 6 and outcome(backlog) == [DeliveryStatus.DELIVERED] * 6
