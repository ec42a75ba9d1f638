"""On SQLite (the demo: web and worker on one file, IMMEDIATE transactions) the worker reads a failure's
decline code from Stripe before its batch takes the write lock, so the front desk can redeem meanwhile;
and a second drain that meets the lock leaves the events as they are for the next sweep — an event
waiting for Stripe never ends `failed` because the database was busy."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from integrations.processors import stripe as stripe_adapter
from integrations.processors.base import ProcessorUnavailable
from memberships import services
from memberships.models import Membership
from tests.factories import active_membership
from tests.support.stripe_events import load_event
from tests.support.waiting import PATIENCE

pytestmark = pytest.mark.django_db(transaction=True)

BUSY_TIMEOUT = 2          # seconds a writer waits for the other (the demo's default is 20)


@pytest.fixture
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite demo setup (one file, IMMEDIATE transactions)")


@pytest.fixture
def short_busy_timeout(monkeypatch, sqlite_only):
    monkeypatch.setitem(connections["default"].settings_dict["OPTIONS"], "timeout", BUSY_TIMEOUT)
    connection.close()          # reconnect with it
    yield


@pytest.fixture
def membership(glow):
    tier, _, _ = glow
    m = active_membership(tier=tier)
    Membership.objects.filter(pk=m.pk).update(processor_subscription_id="sub_sqlite_1")
    return Membership.objects.get(pk=m.pk)


def store_failure(membership):
    event = load_event("invoice_payment_failed_renewal.json", membership=membership, subscription_ref="sub_sqlite_1")
    row_id, _ = inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True,
                                  now=timezone.now() - timedelta(seconds=5))
    return row_id


def slow_stripe(monkeypatch, *, seconds: float, then_unreachable: bool, answer: threading.Event | None = None):
    """Stripe answering the decline read slowly (then, optionally, not at all): after `seconds`, or
    once `answer` is set (at most PATIENCE)."""
    reading = threading.Event()

    def invoice_decline(self, *, invoice):
        reading.set()
        if answer is not None:
            answer.wait(PATIENCE)
        else:
            time.sleep(seconds)
        if then_unreachable:
            raise ProcessorUnavailable("APIConnectionError: processor unreachable or rate-limited")
        return "card_declined", "insufficient_funds"

    monkeypatch.setattr(stripe_adapter.StripeProcessor, "invoice_decline", invoice_decline)
    return reading


def run_in_thread(target):
    errors = []

    def body():
        try:
            target()
        except Exception as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, errors


def test_the_front_desk_can_redeem_while_the_worker_reads_a_decline_from_stripe(
        short_busy_timeout, membership, glow, monkeypatch):
    _, facial, _ = glow
    store_failure(membership)
    answer = threading.Event()           # Stripe answers once the desk is done: the desk redeems during the read
    reading = slow_stripe(monkeypatch, seconds=0, then_unreachable=False, answer=answer)
    worker, worker_errors = run_in_thread(lambda: inbox.process_due(now=timezone.now()))
    try:
        assert reading.wait(PATIENCE)
        services.redeem_entitlement(membership=Membership.objects.get(pk=membership.pk), service=facial,
                                    actor=services.Actor.system(), idempotency_key="desk-1", now=timezone.now())
        refused = None
    except OperationalError as exc:
        refused = str(exc)
    finally:
        answer.set()
        worker.join(PATIENCE)
        connections.close_all()
    assert not worker_errors
    assert refused is None, f"the front desk's redemption failed while the worker waited on Stripe: {refused}"


def test_a_second_drain_meeting_the_lock_never_fails_an_event_that_waits_for_stripe(
        short_busy_timeout, membership, monkeypatch):
    failure_id = store_failure(membership)
    # Worker 1 waits on Stripe for 2.5 busy timeouts, then finds it unreachable: the event should
    # wait (received, retried later). Worker 2's drain starts meanwhile.
    reading = slow_stripe(monkeypatch, seconds=BUSY_TIMEOUT * 2.5, then_unreachable=True)
    now = timezone.now()
    worker1, errors1 = run_in_thread(lambda: inbox.process_due(now=now, limit=1))
    try:
        assert reading.wait(PATIENCE)
        inbox.process_due(now=now)            # worker 2 (the minute sweep, or a triggered drain)
    except OperationalError:
        pass                                   # a drain that gives up is fine: the row is the record of work
    finally:
        worker1.join(PATIENCE)
        connections.close_all()
    assert not errors1
    row = InboundEvent.objects.get(pk=failure_id)
    assert row.status == InboundStatus.RECEIVED, (row.status, row.error)
