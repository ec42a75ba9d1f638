"""Zenoti adapter contract tests: a local HTTP server plays Zenoti with payloads shaped like its
documented ones (tests/fixtures/zenoti/): the chart flag as an alert note set and cleared, the
summary note updated in place, inbound webhooks with a URL token and a re-fetch before acting."""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from werkzeug.wrappers import Response

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus, InboundEvent, RecordObject, RecordServiceMap
from integrations.records import get_adapter
from integrations.records.inbound import process_inbound_event
from memberships import services
from memberships.models import AutomationStage, EntitlementBalance
from tests.factories import active_membership
from tests.support.waiting import PATIENCE

from .conftest import SECRET

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zenoti"
GUEST_ID = "9a8b7c6d-1111-2222-3333-000000000042"
APPOINTMENT_ID = "b1f2c3d4-0000-4a5b-9c8d-000000000001"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


class FakeZenoti:
    """Just enough of Zenoti's REST API, keeping notes and appointments in memory."""

    def __init__(self, server):
        self.notes: dict[str, dict] = {}
        self.appointment = fixture("appointment.json")
        self.calls: list[tuple[str, str]] = []
        self.slow_note_posts = 0  # this many note creations answer too late (after making the note)
        self.answer_late = threading.Event()     # set by the test once the caller gave up
        self.slow_answered = threading.Event()
        server.expect_request(re.compile(r"^/v1/.*")).respond_with_handler(self.handle)

    def handle(self, request):
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != "apikey zen-key":
            return Response(json.dumps({"code": 401, "message": "Invalid API key"}), status=401)
        path, method = request.path, request.method
        if path == "/v1/guests/search":
            return self.json({"guests": [{"id": GUEST_ID}] if request.args.get("email") else [],
                              "page_Info": {"total": 1}})
        if (m := re.fullmatch(r"/v1/guests/([^/]+)/notes", path)) and method == "POST":
            note_id = f"note-{len(self.notes) + 1}"
            self.notes[note_id] = {**request.get_json(), "guest_id": m.group(1)}
            if self.slow_note_posts:
                self.slow_note_posts -= 1
                self.answer_late.wait(PATIENCE)  # the note is made; the answer comes after the caller gave up
                self.slow_answered.set()
            return self.json({"id": note_id, "is_success": True})
        if (m := re.fullmatch(r"/v1/guests/([^/]+)/notes", path)) and method == "GET":
            listing = fixture("guest_notes.json")  # the staff's own notes, then ours
            listing["notes"] += [{**listing["notes"][0], **note, "id": note_id}
                                 for note_id, note in self.notes.items() if note["guest_id"] == m.group(1)]
            return self.json(listing)
        if (m := re.fullmatch(r"/v1/guests/([^/]+)/notes/([^/]+)", path)) and method == "PUT":
            self.notes[m.group(2)].update(request.get_json())
            return self.json({"is_success": True})
        if re.fullmatch(r"/v1/guests/[^/]+/memberships", path):
            if not request.args.get("center_id"):
                return Response('{"message":"center_id is required"}', status=400)
            return self.json(fixture("guest_memberships.json"))
        if path == f"/v1/appointments/{APPOINTMENT_ID}":
            return self.json(self.appointment)
        return Response('{"message":"not found"}', status=404)

    def wait_for_slow_answer(self):
        """The caller gave up on a note's answer: let the late answer go (the fake serves one request
        at a time) before the next call."""
        self.answer_late.set()
        assert self.slow_answered.wait(PATIENCE)
        self.slow_answered.clear()
        self.answer_late.clear()

    @staticmethod
    def json(data, status=200):
        return Response(json.dumps(data), status=status, content_type="application/json")


@pytest.fixture
def zenoti(httpserver, on_adapter):
    fake = FakeZenoti(httpserver)
    practice = on_adapter("zenoti", stage=AutomationStage.REDEMPTIONS, base_url=httpserver.url_for("").rstrip("/"),
                          api_key="zen-key", center_id="c0ffee00-1111-2222-3333-444455556666")
    return fake, practice


def test_card_declined_sets_an_alert_note_and_recovery_clears_that_same_note(zenoti, glow):
    fake, practice = zenoti
    tier, _, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    membership.member.refresh_from_db()
    assert membership.member.record_patient_id == GUEST_ID
    [summary] = fake.notes.values()
    assert summary["alert"] is False and "Glow (Active)" in summary["notes"]

    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd", now=now)
    outbox.dispatch_due(now=now)
    flag_note = RecordObject.objects.get(kind="flag")
    assert fake.notes[flag_note.external_id]["alert"] is True
    assert fake.notes[flag_note.external_id]["note_type"] == 8

    services.mark_recovered(membership=membership, actor=services.Actor.processor(), idempotency_key="rc", now=now)
    outbox.dispatch_due(now=now)
    assert fake.notes[flag_note.external_id]["alert"] is False
    assert len(fake.notes) == 2  # one summary note, one flag note: updated in place, never another
    assert ("PUT", f"/v1/guests/{GUEST_ID}/notes/{flag_note.external_id}") in fake.calls
    assert set(Delivery.objects.filter(destination="record").values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert get_adapter(practice).read_patient_snapshot(membership.member) == {
        "tier": "GLOW", "status": "active", "flags": []}


def test_wrong_api_key_is_a_permanent_failure(zenoti, glow):
    fake, practice = zenoti
    practice.record_config = {**practice.record_config, "api_key": "expired"}
    practice.save()
    tier, _, _ = glow
    now = timezone.now()
    active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    assert set(Delivery.objects.filter(destination="record").values_list("status", flat=True)) == {DeliveryStatus.FAILED}


def post_webhook(client, practice, payload, token=SECRET):
    return client.post(f"/webhooks/records/zenoti/{practice.slug}/?token={token}", data=json.dumps(payload),
                       content_type="application/json")


def test_inbound_completed_appointment_is_refetched_and_spends_once(zenoti, glow, client):
    fake, practice = zenoti
    tier, facial, _ = glow
    membership = active_membership(tier=tier)
    membership.member.record_patient_id = GUEST_ID
    membership.member.save(update_fields=["record_patient_id"])
    RecordServiceMap.objects.create(practice=practice, external_code="HF01", service=facial)

    booked = fixture("webhook_appointment_group_created.json")
    fake.appointment["status"] = 0
    assert post_webhook(client, practice, booked).json()["status"] == "received"
    completed = fixture("webhook_appointment_completed.json")
    fake.appointment["status"] = 1
    assert post_webhook(client, practice, completed).json()["status"] == "received"
    assert post_webhook(client, practice, completed).json()["status"] == "duplicate"
    retried = copy.deepcopy(completed)
    retried["id"] = "6543a1f0c2d4e5f6a7b8ffff"  # Zenoti retried with a new call id
    post_webhook(client, practice, retried)

    now = timezone.now()
    outcomes = [process_inbound_event(inbound_id=row.pk, now=now)
                for row in InboundEvent.objects.order_by("received_at", "id")]
    # the booking webhook was processed after the appointment had already closed: re-fetch says completed
    assert outcomes == ["redeemed", "already_spent", "already_spent"]
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 0
    assert fake.calls.count(("GET", f"/v1/appointments/{APPOINTMENT_ID}")) == 3


def test_inbound_booking_then_cancel_releases(zenoti, glow, client):
    fake, practice = zenoti
    tier, facial, _ = glow
    membership = active_membership(tier=tier)
    membership.member.record_patient_id = GUEST_ID
    membership.member.save(update_fields=["record_patient_id"])
    RecordServiceMap.objects.create(practice=practice, external_code="HF01", service=facial)
    now = timezone.now()
    fake.appointment["status"] = 0
    post_webhook(client, practice, fixture("webhook_appointment_group_created.json"))
    assert process_inbound_event(inbound_id=InboundEvent.objects.get().pk, now=now) == "held"
    assert EntitlementBalance.objects.get(membership=membership, service=facial).available == 0
    fake.appointment["status"] = -1
    cancelled = fixture("webhook_appointment_group_created.json") | {"id": "cancel-call",
                                                                      "event_type": "AppointmentGroup.Status"}
    post_webhook(client, practice, cancelled)
    assert process_inbound_event(inbound_id=InboundEvent.objects.get(event_id="cancel-call").pk, now=now) == \
        "released"
    assert EntitlementBalance.objects.get(membership=membership, service=facial).available == 1


def test_inbound_without_the_url_token_is_refused(zenoti, client):
    fake, practice = zenoti
    assert post_webhook(client, practice, fixture("webhook_appointment_completed.json"), token="guess").status_code == 401
    assert InboundEvent.objects.count() == 0


def test_zenoti_down_leaves_the_webhook_for_the_sweep(zenoti, glow, client, httpserver):
    fake, practice = zenoti
    practice.record_config = {**practice.record_config, "base_url": "http://127.0.0.1:9"}
    practice.save()
    post_webhook(client, practice, fixture("webhook_appointment_completed.json"))
    row = InboundEvent.objects.get()
    assert process_inbound_event(inbound_id=row.pk, now=timezone.now()) == "retry"
    row.refresh_from_db()
    assert row.status == "received" and row.attempts == 1 and "ConnectionError" in row.error


def note_posts(fake):
    return sum(1 for method, path in fake.calls if method == "POST" and path.endswith("/notes"))


def test_a_note_whose_answer_timed_out_is_taken_over_on_retry_not_made_twice(zenoti, glow, settings):
    """Zenoti makes the note but answers after our timeout: the delivery rolls back (and with it the
    note id we would have kept) and is retried. The retry finds the note by its tag and updates it
    instead of creating another one: one summary note and one alert note, whatever the retries."""
    fake, practice = zenoti
    settings.RECORD_HTTP_TIMEOUT_SECONDS = 2     # the late answer waits for the test: this is only our patience
    tier, _, _ = glow
    now = timezone.now()

    fake.slow_note_posts = 1  # the summary note of the enrollment
    membership = active_membership(tier=tier, now=now)
    assert outbox.dispatch_due(now=now).get("retrying")
    fake.wait_for_slow_answer()
    assert RecordObject.objects.count() == 0 and len(fake.notes) == 1  # made in Zenoti, unknown to us
    outbox.dispatch_due(now=now + timedelta(hours=1))
    assert len(fake.notes) == 1

    fake.slow_note_posts = 1  # now the alert note
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd", now=now)
    assert outbox.dispatch_due(now=now + timedelta(hours=1)) == {"retrying": 1}
    fake.wait_for_slow_answer()
    assert outbox.dispatch_due(now=now + timedelta(hours=3)) == {"delivered": 1}

    alerts = [n for n in fake.notes.values() if n["note_type"] == 8]
    summaries = [n for n in fake.notes.values() if n["note_type"] != 8]
    assert len(alerts) == 1 and alerts[0]["alert"] is True
    assert len(summaries) == 1 and "Glow (Past due)" in summaries[0]["notes"]
    assert note_posts(fake) == 2  # each note created once; the retries listed and took them over
    flag = RecordObject.objects.get(kind="flag")
    assert fake.notes[flag.external_id] is alerts[0]
    assert set(Delivery.objects.filter(destination="record").values_list("status", flat=True)) == {
        DeliveryStatus.DELIVERED}


def test_recovery_after_a_lost_alert_answer_clears_that_alert(zenoti, glow, settings):
    """The alert note was made but its answer lost; by the retry the card is paid again. The retry
    (no flag any more) finds our alert note in Zenoti and takes the alert off: none is left behind."""
    fake, practice = zenoti
    settings.RECORD_HTTP_TIMEOUT_SECONDS = 2     # the late answer waits for the test: this is only our patience
    tier, _, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    fake.slow_note_posts = 1
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd", now=now)
    assert outbox.dispatch_due(now=now) == {"retrying": 1}
    fake.wait_for_slow_answer()
    services.mark_recovered(membership=membership, actor=services.Actor.processor(), idempotency_key="rc", now=now)
    outbox.dispatch_due(now=now + timedelta(hours=2))
    [alert] = [n for n in fake.notes.values() if n["note_type"] == 8]
    assert alert["alert"] is False
    assert note_posts(fake) == 2
    assert get_adapter(practice).read_patient_snapshot(membership.member)["flags"] == []


def test_a_staff_note_is_never_taken_for_ours(zenoti, glow):
    """The guest's own notes (no tag of ours) are left alone: ours is created beside them."""
    fake, practice = zenoti
    tier, _, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    [summary] = RecordObject.objects.filter(kind="summary")
    assert summary.external_id != fixture("guest_notes.json")["notes"][0]["id"]
    assert fake.notes[summary.external_id]["notes"].endswith(" · membership ledger summary")
    assert ("GET", f"/v1/guests/{GUEST_ID}/notes") in fake.calls
    assert membership.member.pk
