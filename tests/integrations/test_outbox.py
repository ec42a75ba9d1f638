"""The outbox: fan-out in the event's transaction, stage gate, retries with backoff, dead letters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AuditLog, AutomationStage, EventKind
from tests.factories import active_membership


class FlakyPeer:
    """A destination whose peer fails a given number of times before it answers."""

    name = "test-peer"

    def __init__(self, failures=0, permanent=False, crashes=0, db_errors=0):
        self.failures, self.permanent, self.calls, self.effects = failures, permanent, 0, set()
        self.crashes, self.db_errors = crashes, db_errors   # unexpected failures of the first deliveries

    def wants(self, event):
        return event.kind == EventKind.REDEEMED

    def required_stage(self, event):
        return AutomationStage.REDEMPTIONS

    def describe(self, event):
        return f"tell the peer about event {event.pk}"

    def deliver(self, event, *, delivery, now):
        self.calls += 1
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("destination bug")
        if self.db_errors:
            self.db_errors -= 1
            # half-way through its own writes, a statement the database refuses (integer out of
            # range: OverflowError on SQLite, DataError on PostgreSQL, which aborts the transaction)
            AuditLog.objects.create(action="half-way", object_type="Delivery", object_id=str(delivery.pk),
                                    created_at=now)
            Delivery.objects.filter(pk=delivery.pk).update(attempts=2**63)
        if self.permanent:
            raise outbox.PermanentDeliveryError("declined")
        if self.calls <= self.failures:
            raise outbox.RetryableDeliveryError("peer answered 503")
        self.effects.add(delivery.idempotency_key)
        return {"ok": True}


@pytest.fixture
def peer(request):
    def make(**kwargs):
        p = FlakyPeer(**kwargs)
        outbox.register(p)
        request.addfinalizer(lambda: outbox._REGISTRY.pop(p.name, None))
        return p
    return make


def redeem(membership, facial, key, now):
    from memberships import services
    return services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                       idempotency_key=key, now=now)


def test_observe_stage_shadows_instead_of_delivering(glow, peer):
    tier, facial, _ = glow
    p = peer()
    m = active_membership(tier=tier)
    now = timezone.now()
    redeem(m, facial, "r1", now)
    outbox.dispatch_due(now=now)
    d = Delivery.objects.get(destination=p.name)
    assert d.status == DeliveryStatus.SHADOWED
    assert d.note.startswith("would have: tell the peer")
    assert p.calls == 0


def test_retries_with_backoff_then_delivers_once(glow, peer):
    tier, facial, _ = glow
    tier.practice.automation_stage = AutomationStage.TIER_SYNC
    tier.practice.save()
    p = peer(failures=2)
    m = active_membership(tier=tier)
    now = timezone.now()
    redeem(m, facial, "r1", now)
    outbox.dispatch_due(now=now)
    d = Delivery.objects.get(destination=p.name)
    assert d.status == DeliveryStatus.RETRYING and d.attempts == 1 and d.next_attempt_at > now
    outbox.dispatch_due(now=now)  # not due yet: nothing happens
    assert p.calls == 1
    later = now + timedelta(hours=12)
    outbox.dispatch_due(now=later)
    outbox.dispatch_due(now=later + timedelta(hours=12))
    d.refresh_from_db()
    assert d.status == DeliveryStatus.DELIVERED and d.attempts == 3
    outbox.dispatch_due(now=later + timedelta(days=2))
    assert p.calls == 3 and len(p.effects) == 1


def test_dead_letter_after_retry_limit(glow, peer, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    tier, facial, _ = glow
    tier.practice.automation_stage = AutomationStage.TIER_SYNC
    tier.practice.save()
    p = peer(failures=100)
    m = active_membership(tier=tier)
    now = timezone.now()
    redeem(m, facial, "r1", now)
    for day in range(5):
        outbox.dispatch_due(now=now + timedelta(days=day))
    d = Delivery.objects.get(destination=p.name)
    assert d.status == DeliveryStatus.DEAD and d.attempts == 3 and "503" in d.last_error
    outbox.redeliver(d, now=now + timedelta(days=6))
    d.refresh_from_db()
    assert d.status == DeliveryStatus.PENDING and d.attempts == 0


def test_permanent_error_is_not_retried(glow, peer):
    tier, facial, _ = glow
    tier.practice.automation_stage = AutomationStage.TIER_SYNC
    tier.practice.save()
    p = peer(permanent=True)
    m = active_membership(tier=tier)
    now = timezone.now()
    redeem(m, facial, "r1", now)
    outbox.dispatch_due(now=now)
    outbox.dispatch_due(now=now + timedelta(days=1))
    assert Delivery.objects.get(destination=p.name).status == DeliveryStatus.FAILED
    assert p.calls == 1


def test_replayed_redemption_makes_no_second_delivery(glow, peer):
    tier, facial, _ = glow
    p = peer()
    m = active_membership(tier=tier)
    now = timezone.now()
    redeem(m, facial, "r1", now)
    redeem(m, facial, "r1", now)
    assert Delivery.objects.filter(destination=p.name).count() == 1


def two_deliveries(glow, peer, **kwargs):
    """Two redemptions by two members: the first's delivery is the first in the queue."""
    tier, facial, _ = glow
    tier.practice.automation_stage = AutomationStage.TIER_SYNC
    tier.practice.save()
    p = peer(**kwargs)
    now = timezone.now()
    redeem(active_membership(tier=tier), facial, "r1", now)
    redeem(active_membership(tier=tier), facial, "r2", now + timedelta(seconds=1))
    first, second = Delivery.objects.filter(destination=p.name).order_by("next_attempt_at", "id")
    return p, first, second, now + timedelta(seconds=1)


@pytest.mark.parametrize("failure", [{"crashes": 1}, {"db_errors": 1}], ids=["RuntimeError", "database error"])
def test_an_unexpected_exception_is_a_counted_attempt_and_the_queue_goes_on(glow, peer, failure, caplog):
    p, first, second, now = two_deliveries(glow, peer, **failure)

    outbox.dispatch_due(now=now)

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == DeliveryStatus.DELIVERED
    assert first.status == DeliveryStatus.RETRYING and first.attempts == 1 and first.next_attempt_at > now
    assert first.last_error.split(":")[0] in ("RuntimeError", "OverflowError", "DataError")
    assert not AuditLog.objects.filter(action="half-way").exists()   # its own writes were undone
    assert f"delivery {first.pk} to {p.name}" in caplog.text

    outbox.dispatch_due(now=now + timedelta(hours=12))
    first.refresh_from_db()
    assert first.status == DeliveryStatus.DELIVERED and first.attempts == 2 and first.last_error == ""
    assert p.effects == {first.idempotency_key, second.idempotency_key} and p.calls == 3


def test_a_destination_that_keeps_raising_is_dead_lettered_after_the_retry_limit(glow, peer, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    p, first, second, now = two_deliveries(glow, peer, crashes=100)
    for day in range(5):
        outbox.dispatch_due(now=now + timedelta(days=day))
    first.refresh_from_db()
    second.refresh_from_db()
    for delivery in (first, second):
        assert delivery.status == DeliveryStatus.DEAD and delivery.attempts == 3
        assert delivery.last_error == "RuntimeError: destination bug" and delivery.finished_at is not None
    assert p.calls == 6 and p.effects == set()


def test_a_delivery_whose_bookkeeping_raises_still_counts_its_attempt(glow, peer, settings):
    """Even when the outbox's own handling of an answer raises (here the destination's `on_dead`),
    the attempt is counted on the row and the next delivery is not held up."""
    settings.OUTBOX_MAX_ATTEMPTS = 1
    p, first, second, now = two_deliveries(glow, peer, failures=1)

    def on_dead(event, *, delivery, now):
        raise RuntimeError("on_dead bug")

    p.on_dead = on_dead
    outbox.dispatch_due(now=now)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == DeliveryStatus.DEAD and first.attempts == 1
    assert first.last_error == "RuntimeError: on_dead bug"
    assert second.status == DeliveryStatus.DELIVERED
