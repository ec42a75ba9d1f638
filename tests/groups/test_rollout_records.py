"""A group running more than one record: a location with its own record (Location.record_adapter /
record_config) gets the chart writes of the members whose home it is, and its webhooks — at
/webhooks/records/<adapter>/<practice>/locations/<id>/ — are read with its adapter and spend at the
stage of the member's location. Members elsewhere keep the practice's record."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from werkzeug.wrappers import Response

from integrations import inbox, outbox
from integrations.models import Delivery, InboundEvent
from integrations.records import adapter_for_member
from integrations.records.base import sign
from memberships.models import AutomationStage, EntitlementBalance, Location
from tests.factories import MemberFactory, active_membership

SECRET = "rec-secret-0123456789"


@pytest.fixture
def receiver(httpserver):
    received = []

    def handler(request):
        received.append(request)
        return Response("", status=200)

    httpserver.expect_request("/north", method="POST").respond_with_handler(handler)
    return httpserver, received


@pytest.fixture
def clinics(practice):
    """The practice keeps the builtin chart; North runs a webhook record of its own, with its own
    secret (here the same string as the practice's: only North's verifies North's webhooks)."""
    practice.record_webhook_secret = SECRET
    practice.automation_stage = AutomationStage.REDEMPTIONS
    practice.save()
    north = Location.objects.create(practice=practice, name="North", record_adapter="webhook",
                                    record_config={"outbound_url": "http://127.0.0.1:9/none"},
                                    record_webhook_secret=SECRET)
    south = Location.objects.create(practice=practice, name="South")
    return north, south


def _member_at(location, tier, patient):
    member = MemberFactory(practice=tier.practice, home_location=location, record_patient_id=patient)
    return active_membership(tier=tier, member=member)


def test_chart_writes_go_to_the_home_locations_own_record(clinics, glow, receiver):
    server, received = receiver
    north, south = clinics
    Location.objects.filter(pk=north.pk).update(record_config={"outbound_url": server.url_for("/north")})
    at_north = _member_at(Location.objects.get(pk=north.pk), glow[0], "P-N")
    at_south = _member_at(south, glow[0], "P-S")
    assert adapter_for_member(at_north.member).name == "webhook"
    assert adapter_for_member(at_south.member).name == "builtin"
    outbox.dispatch_due(now=timezone.now())
    assert set(Delivery.objects.filter(destination="record").values_list("event__member_id", flat=True)) == {
        at_north.member_id}
    assert len(received) == 2                                     # enrolled, refilled: North's record only
    body = json.loads(received[-1].get_data())
    assert body["patient"]["member_number"] == at_north.member.member_number
    assert received[-1].headers["X-Medspa-Signature"] == sign(received[-1].get_data(), SECRET)


def _treatment(client, url, patient, appointment):
    payload = {"id": f"evt-{appointment}", "type": "treatment.completed",
               "data": {"appointment_id": appointment, "patient_id": patient, "service_code": "hydrafacial"}}
    body = json.dumps(payload).encode()
    return client.post(url, data=body, content_type="application/json", headers={"X-Medspa-Signature": sign(body, SECRET)})


def test_a_locations_record_webhook_names_the_location_and_spends_at_its_stage(client, clinics, glow, practice):
    north, south = clinics
    membership = _member_at(north, glow[0], "P-N")
    url = f"/webhooks/records/webhook/{practice.slug}/locations/{north.pk}/"
    answer = _treatment(client, url, "P-N", "A-1")
    assert answer.status_code == 200 and answer.json()["status"] == "received"
    row = InboundEvent.objects.get()
    assert row.source == f"record:webhook:{practice.pk}:{north.pk}"
    inbox.process_due(now=timezone.now())
    facial = EntitlementBalance.objects.get(membership=membership, service=glow[1])
    assert facial.balance == 0                                   # spent once, at North's stage (redemptions)
    # the same appointment again: a duplicate, nothing more spent
    assert _treatment(client, url, "P-N", "A-1").json()["status"] == "duplicate"


def test_a_location_behind_on_the_rollout_holds_the_treatment_for_review(client, clinics, glow, practice):
    from integrations.models import RecordException

    north, _ = clinics
    Location.objects.filter(pk=north.pk).update(automation_stage=AutomationStage.ALERTS)
    membership = _member_at(Location.objects.get(pk=north.pk), glow[0], "P-N")
    _treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/{north.pk}/", "P-N", "A-2")
    inbox.process_due(now=timezone.now())
    assert EntitlementBalance.objects.get(membership=membership, service=glow[1]).balance == 1
    assert RecordException.objects.get().kind == "review"


def test_webhooks_of_a_location_without_its_own_record_are_refused_like_an_unknown_practice(client, clinics, practice):
    north, south = clinics
    refused = _treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/{south.pk}/", "P-S", "A-3")
    unknown = _treatment(client, f"/webhooks/records/webhook/{practice.slug}/locations/999999/", "P-S", "A-4")
    practice_url = _treatment(client, f"/webhooks/records/webhook/{practice.slug}/", "P-S", "A-5")  # builtin
    assert refused.status_code == unknown.status_code == practice_url.status_code == 401
    assert refused.json() == unknown.json()
    wrong_adapter = _treatment(client, f"/webhooks/records/zenoti/{practice.slug}/locations/{north.pk}/", "P", "A-6")
    assert wrong_adapter.status_code == 401
    assert not InboundEvent.objects.exists()


def test_a_redemption_at_the_desk_reaches_the_home_locations_own_record(client, front_desk, clinics, glow):
    from tests.staff.conftest import redeem_post

    north, _ = clinics
    membership = _member_at(north, glow[0], "P-N")
    Delivery.objects.all().delete()
    client.force_login(front_desk)
    answer, _ = redeem_post(client, membership.member, glow[1])
    assert answer.status_code == 302
    assert list(Delivery.objects.filter(destination="record").values_list("event__kind", "event__member_id")) == [
        ("redeemed", membership.member_id)]


def test_the_admin_keeps_a_locations_record_credentials_write_only_and_its_stage_to_the_rollout_page(
        admin_client, practice, settings, monkeypatch):
    import socket

    from django.urls import reverse

    settings.RECORD_ALLOW_PRIVATE_URLS = False
    real = socket.getaddrinfo          # this machine resolves no public names: api.zenoti.com is public here
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.0.0.10", 443))] if host == "api.zenoti.com" else real(host, *a, **k))
    clinic = Location.objects.create(practice=practice, name="North", record_adapter="zenoti",
                                     record_config={"base_url": "https://api.zenoti.com", "api_key": "zk-very-secret",
                                                    "center_id": "c1"})
    url = reverse("admin:memberships_location_change", args=[clinic.pk])
    page = admin_client.get(url)
    form = page.context["adminform"].form
    assert "zk-very-secret" not in page.content.decode() and "automation_stage" not in form.fields
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data = {k: v for k, v in data.items() if v is not False}
    answer = admin_client.post(url, data)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert Location.objects.get(pk=clinic.pk).record_config["api_key"] == "zk-very-secret"   # kept, unseen
    data["record_config"] = '{"base_url": "https://127.0.0.1/", "center_id": "c1"}'
    assert admin_client.post(url, data).status_code == 200                                 # an inward URL: refused
    data["record_config"], data["record_adapter"] = '{}', "boulevard"
    assert admin_client.post(url, data).status_code == 200                                 # no such adapter
    assert Location.objects.get(pk=clinic.pk).record_adapter == "zenoti"


def test_moving_home_to_a_location_with_its_own_record_writes_the_chart_there(clinics, glow, receiver, manager):
    from memberships import services
    from memberships.services.home_location import move_home_location

    server, received = receiver
    north, south = clinics
    Location.objects.filter(pk=north.pk).update(record_config={"outbound_url": server.url_for("/north")})
    membership = _member_at(south, glow[0], "P-S")
    outbox.dispatch_due(now=timezone.now())
    assert received == [] and not Delivery.objects.filter(destination="record").exists()   # South: builtin
    move_home_location(member=membership.member, location=Location.objects.get(pk=north.pk),
                       actor=services.Actor.staff(manager), idempotency_key="move", now=timezone.now())
    outbox.dispatch_due(now=timezone.now())
    assert len(received) == 1
    body = json.loads(received[0].get_data())
    assert body["patient"]["member_number"] == membership.member.member_number
    assert body["membership"]["tier_code"] == "glow"
