"""On PostgreSQL, with real processes and threads: a worker SIGKILLed inside the provider call, after
the provider accepted a member's SMS, never gets that SMS sent twice — the next workers leave it
alone and, once OUTBOX_SENDING_TIMEOUT_SECONDS have passed, show it as "may have been sent"; a
destination whose peer is idempotent is delivered again as before. Two workers at once send each
message exactly once, and the sweep of stopped sendings never takes a message a live worker is
still handing over, however long its provider takes."""

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection

from billing import dunning
from billing.models import DunningMessage, MessageChannel, MessageStatus
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.models import AutomationStage, EventKind
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
    membership,
    sms_to,
)
from tests.factories import active_membership
from tests.support.waiting import PATIENCE

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def worker_killed_inside_the_call(delivery, record_file, *args):
    """Run `deliver_one` for `delivery` in a child process that dies (SIGKILL) once its provider
    accepted; returns the child's exit code."""
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.test",
               DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}")
    child = subprocess.run([sys.executable, "-m", "tests.support.outbox_worker", str(delivery.pk), T0.isoformat(),
                            str(record_file), *args], cwd=ROOT, env=env, capture_output=True, timeout=PATIENCE)
    assert b"survived" not in child.stdout, child.stdout
    return child.returncode


def provider_copies(record_file):
    return record_file.read_text().splitlines() if record_file.exists() else []


def dispatch_until(predicate, *, now, seconds=PATIENCE):
    """Run the outbox at `now` until `predicate()` (the dead child's session may take a moment to be
    gone at the server: until then its row lock stands, and the sweep skips the row)."""
    deadline = time.monotonic() + seconds
    while True:
        outbox.dispatch_due(now=now)
        if predicate() or time.monotonic() > deadline:
            return predicate()
        time.sleep(0.1)


def test_a_worker_killed_after_twilio_accepted_the_sms_never_sends_it_again(membership, settings, tmp_path):
    member = membership.member
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    delivery = Delivery.objects.get(destination="member_message", event__payload__channel="sms")
    record = tmp_path / "twilio.log"

    assert worker_killed_inside_the_call(delivery, record, "sms") == -9
    assert provider_copies(record) == [f"sms {member.phone}"]

    outbox.dispatch_due(now=T0 + timedelta(minutes=1))      # the next worker, a minute later
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENDING and delivery.attempts == 1
    later = T0 + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS + 1)
    assert dispatch_until(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.UNCERTAIN, now=later)
    outbox.dispatch_due(now=later + timedelta(days=1))

    assert provider_copies(record) == [f"sms {member.phone}"] and sms_to(member) == []    # once, ever
    message = DunningMessage.objects.get(channel=MessageChannel.SMS)
    assert message.status == MessageStatus.UNCERTAIN and message.sent_at is None
    assert member.events.filter(summary__startswith="Card-update SMS may have been sent").count() == 1
    assert not member.events.filter(kind=EventKind.MESSAGE_SENT, payload__message_id=message.pk).exists()


class RecordingPeer:
    def __init__(self, name, repeatable):
        self.name, self.repeatable, self.calls = name, repeatable, []

    def wants(self, event):
        return event.kind == EventKind.REDEEMED

    def required_stage(self, event):
        return AutomationStage.OBSERVE

    def describe(self, event):
        return f"tell the peer about event {event.pk}"

    def deliver(self, event, *, delivery, now):
        self.calls.append(delivery.idempotency_key)
        return {"ok": True}


@pytest.mark.parametrize("repeatable", [True, False], ids=["idempotent peer", "peer without a key"])
def test_a_worker_killed_inside_a_destination(glow, request, tmp_path, settings, repeatable):
    """An idempotent peer is asked again and delivered (the row rolled back with the dead worker's
    transaction); a peer that takes no key is never asked again by itself."""
    peer = outbox.register(RecordingPeer(f"test-crash-peer-{int(repeatable)}", repeatable))
    request.addfinalizer(lambda: outbox._REGISTRY.pop(peer.name, None))
    tier, facial, _ = glow
    services.redeem_entitlement(membership=active_membership(tier=tier), service=facial,
                                actor=services.Actor.system(), idempotency_key="r1", now=T0)
    delivery = Delivery.objects.get(destination=peer.name)
    record = tmp_path / "peer.log"
    args = ["peer", peer.name] + (["--repeatable"] if repeatable else [])

    assert worker_killed_inside_the_call(delivery, record, *args) == -9
    assert provider_copies(record) == [f"peer {delivery.idempotency_key}"]

    later = T0 + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS + 1)
    wanted = DeliveryStatus.DELIVERED if repeatable else DeliveryStatus.UNCERTAIN
    assert dispatch_until(lambda: Delivery.objects.get(pk=delivery.pk).status == wanted, now=later)
    assert peer.calls == ([delivery.idempotency_key] if repeatable else [])


def test_two_workers_at_once_send_each_card_update_exactly_once(member_factory):
    memberships = [member_factory() for _ in range(12)]
    for i, membership in enumerate(memberships):
        fail(membership, invoice=f"in_{i}", now=T0)
    dunning.run_dunning(now=T0)
    mail.outbox.clear()

    class SlowTwilio(sms.LocmemBackend):
        def send(self, **kwargs):
            time.sleep(0.02)                    # both workers are inside a call at the same time
            return super().send(**kwargs)

    errors = []

    def worker():
        try:
            while outbox.dispatch_due(now=T0, limit=5):
                pass
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)
        finally:
            connection.close()

    original = sms.get_backend
    sms.get_backend = SlowTwilio
    try:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=PATIENCE)
    finally:
        sms.get_backend = original

    assert errors == [] and not any(thread.is_alive() for thread in threads)
    for membership in memberships:
        member = membership.member
        assert len(sms_to(member)) == 1
        assert len([m for m in mail.outbox if m.to == [member.email]]) == 1
    assert not DunningMessage.objects.exclude(status__in=[MessageStatus.QUEUED, MessageStatus.SENT]).exists()
    assert not Delivery.objects.exclude(status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.SHADOWED]).filter(
        destination="member_message").exists()


def test_the_sweep_leaves_alone_a_worker_still_waiting_for_twilio(membership, settings):
    member = membership.member
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    delivery = Delivery.objects.get(destination="member_message", event__payload__channel="sms")
    inside, answer = threading.Event(), threading.Event()

    class TwilioTakesItsTime(sms.LocmemBackend):
        def send(self, **kwargs):
            inside.set()
            answer.wait(timeout=PATIENCE)
            return super().send(**kwargs)

    outcome = []

    def worker():
        try:
            outcome.append(outbox.deliver_one(delivery.pk, now=T0))
        finally:
            connection.close()

    original = sms.get_backend
    sms.get_backend = TwilioTakesItsTime
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        assert inside.wait(timeout=PATIENCE)
        far_later = T0 + timedelta(seconds=10 * settings.OUTBOX_SENDING_TIMEOUT_SECONDS)
        assert outbox.sweep_sending(now=far_later) == 0          # its worker is alive: not given up on
        assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENDING
        answer.set()
        thread.join(timeout=PATIENCE)
    finally:
        answer.set()
        sms.get_backend = original

    assert outcome == [DeliveryStatus.DELIVERED]
    assert outbox.sweep_sending(now=far_later) == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and len(sms_to(member)) == 1
    assert DunningMessage.objects.get(channel=MessageChannel.SMS).sent_at is not None
