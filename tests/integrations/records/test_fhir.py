"""The FHIR adapter end to end, against a real local FHIR R4 server (sekmet-fhir): the chart gets the
membership, balances and flag; a reported Procedure spends once; an outage loses and doubles nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus, InboundEvent, RecordException
from integrations.records import get_adapter
from integrations.records.inbound import process_inbound_event
from memberships import services
from memberships.models import AutomationStage, EntitlementBalance
from tests.factories import active_membership
from tests.support.fhir_server import free_port

from .conftest import SECRET

pytestmark = pytest.mark.fhir


@pytest.fixture
def fhir_practice(on_adapter, fhir_server):
    system = f"https://medspa.example/t{uuid.uuid4().hex[:10]}"
    return on_adapter("fhir", stage=AutomationStage.REDEMPTIONS, base_url=fhir_server.base_url,
                      identifier_system=system)


def resources(fhir, rtype, practice, kind):
    system = f"{practice.record_config['identifier_system']}/{practice.slug}/{kind}"
    return fhir.search(rtype, {"identifier": f"{system}|"})


def entitlement(account, code):
    for ext in account.get("extension", []):
        if ext["url"].endswith("/entitlement"):
            parts = {p["url"]: p for p in ext["extension"]}
            if parts["service"]["valueCoding"]["code"] == code:
                return parts
    return None


def balance(membership, service):
    return EntitlementBalance.objects.get(membership=membership, service=service).balance


def post_procedure(client, practice, resource, *, token=SECRET):
    return client.post(f"/webhooks/records/fhir/{practice.slug}/", data=resource,
                       content_type="application/fhir+json", headers={"Authorization": f"Bearer {token}"})


def test_enrolment_flag_and_recovery_reach_the_chart(fhir_practice, glow, fhir):
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    member = membership.member
    outbox.dispatch_due(now=now)
    member.refresh_from_db()

    patients = resources(fhir, "Patient", fhir_practice, "member")
    assert [p["id"] for p in patients] == [member.record_patient_id]
    [account] = resources(fhir, "Account", fhir_practice, "membership")
    assert account["status"] == "active" and account["name"] == "Glow membership"
    assert entitlement(account, "hydrafacial")["remaining"]["valueInteger"] == 1
    assert entitlement(account, "product-credit")["remaining"]["valueMoney"] == {"value": 50, "currency": "USD"}
    assert resources(fhir, "Flag", fhir_practice, "chart-flag") == []

    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd1",
                           now=now + timedelta(minutes=1))
    outbox.dispatch_due(now=now + timedelta(minutes=1))
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["status"] == "active" and "card declined" in flag["code"]["text"].lower()
    assert flag["subject"]["reference"] == f"Patient/{member.record_patient_id}"

    services.mark_recovered(membership=membership, actor=services.Actor.processor(), idempotency_key="rc1",
                            now=now + timedelta(minutes=2))
    outbox.dispatch_due(now=now + timedelta(minutes=2))
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["status"] == "inactive"
    assert len(resources(fhir, "Account", fhir_practice, "membership")) == 1
    assert get_adapter(fhir_practice).read_patient_snapshot(member) == {"tier": "glow", "status": "active",
                                                                          "flags": []}


def test_a_procedure_reported_three_times_spends_once(fhir_practice, glow, fhir, client):
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    services.refill_entitlements(membership=membership, cycle_key="inv_2", actor=services.Actor.processor(),
                                 now=now)  # two HydraFacials now
    outbox.dispatch_due(now=now)
    membership.member.refresh_from_db()
    appointment_system = f"{fhir_practice.record_config['identifier_system']}/{fhir_practice.slug}/appointment"
    created = fhir.post("Procedure", json={
        "resourceType": "Procedure", "status": "completed",
        "identifier": [{"system": appointment_system, "value": "APT-1001"}],
        "code": {"coding": [{"system": "https://clinic.example/services", "code": "hydrafacial"}],
                 "text": "HydraFacial"},
        "subject": {"reference": f"Patient/{membership.member.record_patient_id}"},
        "performedDateTime": now.isoformat()}).json()

    answers = [post_procedure(client, fhir_practice, created) for _ in range(3)]
    assert [a.json()["status"] for a in answers] == ["received", "duplicate", "duplicate"]
    # The record re-saves the Procedure (a new version, so a new notification): still one spend.
    created["note"] = [{"text": "signed"}]
    resaved = fhir.put(f"Procedure/{created['id']}", json=created,
                       headers={"If-Match": f'W/"{created["meta"]["versionId"]}"'}).json()
    assert post_procedure(client, fhir_practice, resaved).json()["status"] == "received"

    for row in InboundEvent.objects.filter(source__startswith="record:fhir:"):
        process_inbound_event(inbound_id=row.pk, now=now)
        process_inbound_event(inbound_id=row.pk, now=now)  # the task runs twice
    assert balance(membership, facial) == 1
    assert RecordException.objects.count() == 0

    outbox.dispatch_due(now=now + timedelta(minutes=1))
    [account] = resources(fhir, "Account", fhir_practice, "membership")
    assert entitlement(account, "hydrafacial")["remaining"]["valueInteger"] == 1


def test_a_forged_or_unsigned_notification_is_refused(fhir_practice, client):
    resource = {"resourceType": "Procedure", "id": "x", "status": "completed"}
    assert post_procedure(client, fhir_practice, resource, token="wrong").status_code == 401
    assert InboundEvent.objects.count() == 0


def test_the_procedure_is_re_read_before_acting(fhir_practice, glow, fhir, client):
    """A notification claiming 'completed' for a Procedure the server has as in-progress spends nothing."""
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    membership.member.refresh_from_db()
    created = fhir.post("Procedure", json={
        "resourceType": "Procedure", "status": "in-progress", "code": {"text": "hydrafacial"},
        "subject": {"reference": f"Patient/{membership.member.record_patient_id}"}}).json()
    claimed = {**created, "status": "completed"}
    post_procedure(client, fhir_practice, claimed)
    row = InboundEvent.objects.get()
    assert process_inbound_event(inbound_id=row.pk, now=now) == "ignored"
    assert balance(membership, facial) == 1


def test_record_down_then_back_delivers_once(fhir_practice, glow, fhir, fhir_server):
    tier, facial, _ = glow
    now = timezone.now()
    real_url = fhir_practice.record_config["base_url"]
    fhir_practice.record_config = {**fhir_practice.record_config, "base_url": f"http://127.0.0.1:{free_port()}/fhir"}
    fhir_practice.save()
    membership = active_membership(tier=tier, now=now)
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd",
                           now=now)
    outbox.dispatch_due(now=now)
    deliveries = Delivery.objects.filter(destination="record")
    assert {d.status for d in deliveries} == {DeliveryStatus.RETRYING}
    assert all("ConnectionError" in d.last_error for d in deliveries)
    outbox.dispatch_due(now=now)  # not due yet: nothing more happens
    assert {d.attempts for d in deliveries.all()} == {1}

    fhir_practice.record_config = {**fhir_practice.record_config, "base_url": real_url}
    fhir_practice.save()
    later = now + timedelta(hours=7)  # past the longest backoff
    outbox.dispatch_due(now=later)
    assert {d.status for d in deliveries.all()} == {DeliveryStatus.DELIVERED}
    assert len(resources(fhir, "Patient", fhir_practice, "member")) == 1
    assert len(resources(fhir, "Account", fhir_practice, "membership")) == 1
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["status"] == "active" and flag["meta"]["versionId"] == "1"
    outbox.dispatch_due(now=later + timedelta(days=1))  # nothing due: nothing rewritten
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["meta"]["versionId"] == "1"


def test_record_answering_500_is_retried_and_nothing_doubles(fhir_practice, glow, fhir, fhir_server):
    """A gateway in front of the record answers 500 for a while, then passes requests through."""
    import requests

    tier, facial, _ = glow
    now = timezone.now()
    with HTTPServer(host="127.0.0.1", port=free_port()) as gateway:
        state = {"down": True}

        def handler(request):
            from werkzeug.wrappers import Response

            if state["down"]:
                return Response('{"resourceType":"OperationOutcome"}', status=500)
            path = request.path[len("/fhir"):]
            upstream = requests.request(request.method, f"{fhir_server.base_url}{path}", params=request.args,
                                        data=request.get_data(), timeout=60,
                                        headers={k: v for k, v in request.headers.items()
                                                 if k.lower() not in ("host", "content-length")})
            return Response(upstream.content, status=upstream.status_code,
                            headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")})

        import re
        gateway.expect_request(re.compile(r"^/fhir/.*")).respond_with_handler(handler)
        fhir_practice.record_config = {**fhir_practice.record_config, "base_url": gateway.url_for("/fhir")}
        fhir_practice.save()
        membership = active_membership(tier=tier, now=now)
        outbox.dispatch_due(now=now)
        deliveries = Delivery.objects.filter(destination="record")
        assert {d.status for d in deliveries} == {DeliveryStatus.RETRYING}
        assert all("HTTP 500" in d.last_error for d in deliveries)
        state["down"] = False
        outbox.dispatch_due(now=now + timedelta(hours=7))
        assert {d.status for d in deliveries.all()} == {DeliveryStatus.DELIVERED}
    [account] = resources(fhir, "Account", fhir_practice, "membership")
    assert entitlement(account, "hydrafacial")["remaining"]["valueInteger"] == 1
    assert len(resources(fhir, "Patient", fhir_practice, "member")) == 1
    assert membership.pk


def test_observe_stage_writes_nothing_to_the_chart(on_adapter, fhir_server, glow, fhir):
    system = f"https://medspa.example/t{uuid.uuid4().hex[:10]}"
    practice = on_adapter("fhir", stage=AutomationStage.OBSERVE, base_url=fhir_server.base_url,
                          identifier_system=system)
    tier, _, _ = glow
    now = timezone.now()
    active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    deliveries = Delivery.objects.filter(destination="record")
    assert deliveries and {d.status for d in deliveries} == {DeliveryStatus.SHADOWED}
    assert all(d.note.startswith("would have: write") for d in deliveries)
    assert resources(fhir, "Patient", practice, "member") == []


def _wait_for(predicate):
    """The FHIR server notifies on its own schedule: wait as long as a busy machine needs."""
    from tests.support.waiting import wait_until

    return wait_until(predicate, step=0.1)


def test_rest_hook_subscription_delivers_the_procedure_to_our_endpoint(on_adapter, glow, live_server, fhir_server,
                                                                        fhir):
    """The FHIR server itself notifies our webhook (rest-hook Subscription with our bearer secret);
    the ledger re-reads the Procedure and spends exactly once, even when the record re-saves it."""
    from integrations import inbox

    system = f"https://medspa.example/t{uuid.uuid4().hex[:10]}"
    practice = on_adapter("fhir", stage=AutomationStage.REDEMPTIONS, base_url=fhir_server.base_url,
                          identifier_system=system)
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    membership.member.refresh_from_db()
    adapter = get_adapter(practice)
    sub = adapter.ensure_subscription(endpoint=f"{live_server.url}/webhooks/records/fhir/{practice.slug}")
    try:
        assert sub["status"] == "active", sub
        procedure = fhir.post("Procedure", json={
            "resourceType": "Procedure", "status": "completed",
            "identifier": [{"system": f"{system}/{practice.slug}/appointment", "value": "APT-HOOK-1"}],
            "code": {"coding": [{"code": "hydrafacial"}]},
            "subject": {"reference": f"Patient/{membership.member.record_patient_id}"}}).json()
        assert _wait_for(lambda: InboundEvent.objects.filter(source__startswith="record:fhir:").count() == 1)
        procedure["note"] = [{"text": "chart signed"}]
        fhir.put(f"Procedure/{procedure['id']}", json=procedure,
                 headers={"If-Match": f'W/"{procedure["meta"]["versionId"]}"'})
        assert _wait_for(lambda: InboundEvent.objects.filter(source__startswith="record:fhir:").count() == 2)
        inbox.process_due(now=timezone.now())
        assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 0
        assert sorted(InboundEvent.objects.values_list("error", flat=True)) == ["already_spent", "redeemed"]
    finally:
        fhir.delete(f"Subscription/{sub['id']}")


def test_a_dunning_chart_flag_is_mirrored_and_cleared(fhir_practice, glow, fhir):
    """Dunning raises the flag through the ledger's chart-flag service (a FLAGGED event) and clears it."""
    tier, _, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    services.set_chart_flag(member=membership.member, membership=membership, source="dunning",
                            source_ref="dunning-case:1", text="Card declined — update card before treatment",
                            actor=services.Actor.system(), now=now, reason="card_declined")
    outbox.dispatch_due(now=now)
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["status"] == "active" and flag["code"]["text"] == "Card declined — update card before treatment"
    assert flag["code"]["coding"][0]["code"] == "card_declined"
    services.clear_chart_flag(source_ref="dunning-case:1", actor=services.Actor.system(), now=now,
                              reason="payment recovered")
    outbox.dispatch_due(now=now)
    [flag] = resources(fhir, "Flag", fhir_practice, "chart-flag")
    assert flag["status"] == "inactive"


def test_a_replaced_secret_reaches_the_subscription_when_it_is_ensured_again(on_adapter, live_server, fhir_server,
                                                                             fhir):
    """The manager replaces the record's webhook secret and ensures the Subscription again: the server
    now sends the new bearer (the old one would be refused), and its notifications are taken."""
    from integrations.records.secrets import set_record_webhook_secret

    practice = on_adapter("fhir", stage=AutomationStage.REDEMPTIONS, base_url=fhir_server.base_url,
                          identifier_system=f"https://medspa.example/t{uuid.uuid4().hex[:10]}")
    endpoint = f"{live_server.url}/webhooks/records/fhir/{practice.slug}"
    first = get_adapter(practice).ensure_subscription(endpoint=endpoint)
    try:
        practice = set_record_webhook_secret(owner=practice, secret="a-new-secret-0123456789",
                                             actor=services.Actor.system(), now=timezone.now())
        again = get_adapter(practice).ensure_subscription(endpoint=endpoint)
        assert again["id"] == first["id"] and again["status"] == "active", again
        assert fhir.get(f"Subscription/{first['id']}").json()["channel"]["header"] == [
            "Authorization: Bearer a-new-secret-0123456789"]
        patient = fhir.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Rivera"}]}).json()
        procedure = fhir.post("Procedure", json={"resourceType": "Procedure", "status": "completed",
                                                 "code": {"coding": [{"code": "hydrafacial"}]},
                                                 "subject": {"reference": f"Patient/{patient['id']}"}})
        assert procedure.status_code == 201, procedure.text
        assert _wait_for(lambda: InboundEvent.objects.filter(source__startswith="record:fhir:").count() == 1)
    finally:
        fhir.delete(f"Subscription/{first['id']}")
