"""Two workers whose batches mix Stripe and record events for the same memberships: a lock conflict
between them (PostgreSQL breaks a deadlock by failing one statement) makes the event wait a moment and
try again — it never ends `failed`."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from integrations.records.base import InboundWebhook
from integrations.records.inbound import receive_webhook
from memberships.models import AutomationStage, Membership
from tests.factories import MemberFactory, active_membership
from tests.support.stripe_events import load_event
from tests.support.waiting import PATIENCE

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def record_practice(practice):
    practice.record_adapter = "webhook"
    practice.record_config = {"outbound_url": "http://127.0.0.1:9/none"}
    practice.record_webhook_secret = "rec-secret-0123456789"
    practice.automation_stage = AutomationStage.REDEMPTIONS
    practice.save()
    return practice


def member_with_membership(tier, patient_id: str, sub_ref: str) -> Membership:
    member = MemberFactory(practice=tier.practice, record_patient_id=patient_id)
    membership = active_membership(tier=tier, member=member)
    Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=sub_ref)
    return Membership.objects.get(pk=membership.pk)


def store_stripe(membership, sub_ref: str, n: int, at):
    event = load_event("customer_subscription_updated_active.json", membership=membership,
                       subscription_ref=sub_ref, event_suffix=f"_lock{n}")
    row_id, _ = inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True, now=at)
    InboundEvent.objects.filter(pk=row_id).update(received_at=at)
    return row_id


def store_booking(practice, patient_id: str, n: int, at):
    payload = {"id": f"evt_book_{n}", "type": "appointment.booked", "occurred_at": "2026-11-25T17:00:00Z",
               "data": {"appointment_id": f"A-{n}", "patient_id": patient_id, "service_code": "hydrafacial",
                        "quantity": 1}}
    row, _ = receive_webhook(
        webhook=InboundWebhook(practice=practice, event_id=payload["id"], event_type=payload["type"],
                               payload=payload), adapter_name="webhook", now=at)
    InboundEvent.objects.filter(pk=row.pk).update(received_at=at)
    return row.pk


def test_two_workers_with_mixed_stripe_and_record_batches_never_fail_an_event(record_practice, glow, monkeypatch):
    tier, _, _ = glow
    a = member_with_membership(tier, "P-A", "sub_lock_a")
    b = member_with_membership(tier, "P-B", "sub_lock_b")
    t0 = timezone.now() - timedelta(minutes=5)
    # Worker 1 takes the two oldest rows (Stripe about A, a booking of B's patient), worker 2 the next
    # two (Stripe about B, a booking of A's patient).
    ids = [store_stripe(a, "sub_lock_a", 1, t0), store_booking(record_practice, "P-B", 1, t0 + timedelta(seconds=1)),
           store_stripe(b, "sub_lock_b", 2, t0 + timedelta(seconds=2)),
           store_booking(record_practice, "P-A", 2, t0 + timedelta(seconds=3))]

    picked, both_at_lock, arrivals = threading.Event(), threading.Event(), []
    in_order, lock = inbox._in_processor_order, inbox._lock_memberships

    def order_then_signal(rows):
        picked.set()                 # this worker holds its rows: the other may pick the rest
        return in_order(rows)

    def lock_then_meet(ordered, **kwargs):
        arrivals.append(1)
        if len(arrivals) >= 2:
            both_at_lock.set()
        lock(ordered, **kwargs)
        # Both workers are at their batch's lock: holding the memberships, or waiting for the other's.
        both_at_lock.wait(PATIENCE)

    monkeypatch.setattr(inbox, "_in_processor_order", order_then_signal)
    monkeypatch.setattr(inbox, "_lock_memberships", lock_then_meet)
    now = timezone.now()
    results, errors = {}, []

    def worker(name):
        try:
            results[name] = inbox.process_due(now=now, limit=2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    w1 = threading.Thread(target=worker, args=("w1",))
    w1.start()
    assert picked.wait(PATIENCE)
    w2 = threading.Thread(target=worker, args=("w2",))
    w2.start()
    w1.join(PATIENCE)
    w2.join(PATIENCE)
    assert not errors and not w1.is_alive() and not w2.is_alive()
    assert len(arrivals) >= 2, "a worker's batch never reached its lock: the race was not run"

    rows = {row.pk: row for row in InboundEvent.objects.filter(pk__in=ids)}
    outcome = {row.event_id: (row.status, row.error[:120]) for row in rows.values()}
    failed = {k: v for k, v in outcome.items() if v[0] == InboundStatus.FAILED}
    # The promise: a race never ends an event failed (it waits and is applied again).
    assert not failed, f"a lock race failed an event: {failed}"
