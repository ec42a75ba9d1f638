"""The outbox: fan-out in the event's transaction, stage gate, retries with backoff, dead letters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AutomationStage, EventKind
from tests.factories import active_membership


class FlakyPeer:
    """A destination whose peer fails a given number of times before it answers."""

    name = "test-peer"

    def __init__(self, failures=0, permanent=False):
        self.failures, self.permanent, self.calls, self.effects = failures, permanent, 0, set()

    def wants(self, event):
        return event.kind == EventKind.REDEEMED

    def required_stage(self, event):
        return AutomationStage.REDEMPTIONS

    def describe(self, event):
        return f"tell the peer about event {event.pk}"

    def deliver(self, event, *, delivery, now):
        self.calls += 1
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
