"""Record webhooks into the ledger (generic signed adapter): holds at booking, spends at completion,
releases on cancellation; replays spend nothing; what the ledger cannot do becomes an exception."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import InboundEvent, InboundStatus, RecordException, RecordServiceMap
from integrations.records.exceptions import resolve_record_exception
from integrations.records.inbound import process_inbound_event
from integrations.records.selectors import open_record_exceptions
from memberships.errors import ReasonRequired
from memberships.models import AutomationStage, EntitlementBalance, Reservation
from tests.factories import PracticeFactory, ServiceFactory, active_membership

from .conftest import signed_post

URL = "/webhooks/records/webhook/"
_seq = iter(range(1, 10_000))


@pytest.fixture
def webhook_practice(on_adapter):
    return on_adapter("webhook", stage=AutomationStage.REDEMPTIONS, outbound_url="http://127.0.0.1:9/none")


@pytest.fixture
def member_with_one_facial(webhook_practice, glow):
    tier, facial, _ = glow
    membership = active_membership(tier=tier)
    member = membership.member
    member.record_patient_id = "P-100"
    member.save(update_fields=["record_patient_id"])
    return membership, facial


def send(client, practice, type_, appointment_id, *, patient_id="P-100", service_code="hydrafacial",
         event_id=None, **data):
    payload = {"id": event_id or f"evt_{next(_seq)}", "type": type_,
               "data": {"appointment_id": appointment_id, "patient_id": patient_id, "service_code": service_code,
                        **data}}
    response = signed_post(client, URL, payload, **{"X-Medspa-Practice": practice.slug})
    assert response.status_code == 200, response.content
    row = InboundEvent.objects.get(pk=response.json()["id"])
    outcome = process_inbound_event(inbound_id=row.pk, now=timezone.now())
    return response.json()["status"], outcome


def bal(membership, service):
    row = EntitlementBalance.objects.get(membership=membership, service=service)
    return row.balance, row.available


def test_booking_holds_completion_spends_and_replays_spend_nothing(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    assert send(client, webhook_practice, "appointment.booked", "A-1")[1] == "held"
    assert bal(membership, facial) == (1, 0)
    assert send(client, webhook_practice, "treatment.completed", "A-1", event_id="evt_done")[1] == "committed"
    assert bal(membership, facial) == (0, 0)
    # the same webhook again (deduped at the door) and a fresh copy with a new id (deduped by appointment)
    status, outcome = send(client, webhook_practice, "treatment.completed", "A-1", event_id="evt_done")
    assert status == "duplicate"
    assert send(client, webhook_practice, "treatment.completed", "A-1")[1] == "already_spent"
    assert bal(membership, facial) == (0, 0)
    # a booking delivered late (after its treatment) holds nothing
    assert send(client, webhook_practice, "appointment.booked", "A-1")[1] == "already_spent"
    assert bal(membership, facial) == (0, 0)
    assert RecordException.objects.count() == 0


def test_walk_in_treatment_redeems_directly_once(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    for _ in range(3):
        send(client, webhook_practice, "treatment.completed", "A-2")
    assert bal(membership, facial) == (0, 0)


def test_two_bookings_for_the_last_unit_second_is_an_exception_until_the_first_cancels(
        client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    assert send(client, webhook_practice, "appointment.booked", "A-1")[1] == "held"
    assert send(client, webhook_practice, "appointment.booked", "A-2")[1] == "exception:no_balance"
    [exc] = open_record_exceptions(practice_id=webhook_practice.pk)
    assert exc.kind == "no_balance" and exc.appointment_ref == "A-2" and exc.member == membership.member
    assert send(client, webhook_practice, "appointment.cancelled", "A-1")[1] == "released"
    assert bal(membership, facial) == (1, 1)
    assert send(client, webhook_practice, "appointment.cancelled", "A-1")[1] == "nothing_held"
    # the unit is free again: a new booking takes it
    assert send(client, webhook_practice, "appointment.booked", "A-3")[1] == "held"
    assert bal(membership, facial) == (1, 0)
    # a no-show releases too
    assert send(client, webhook_practice, "appointment.cancelled", "A-3", reason="no_show")[1] == "released"
    assert Reservation.objects.get(external_ref="A-3").status == "released"


def test_cancelled_then_completed_anyway_redeems_directly(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    send(client, webhook_practice, "appointment.booked", "A-1")
    send(client, webhook_practice, "appointment.cancelled", "A-1")
    assert send(client, webhook_practice, "treatment.completed", "A-1")[1] == "redeemed"
    assert bal(membership, facial) == (0, 0)


@pytest.mark.parametrize("kwargs, kind", [
    ({"patient_id": "P-unknown"}, "unknown_patient"),
    ({"service_code": "laser-xyz"}, "unknown_service"),
])
def test_unknown_patient_or_service_is_an_exception(client, webhook_practice, member_with_one_facial, kwargs, kind):
    membership, facial = member_with_one_facial
    send(client, webhook_practice, "treatment.completed", "A-9", **kwargs)
    send(client, webhook_practice, "treatment.completed", "A-9", **kwargs)  # replay: still one exception
    [exc] = RecordException.objects.all()
    assert exc.kind == kind and exc.status == "open"
    assert bal(membership, facial) == (1, 1)


def test_service_not_in_tier_and_no_balance_are_exceptions(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    ServiceFactory(practice=webhook_practice, name="Botox", code="botox")
    assert send(client, webhook_practice, "treatment.completed", "A-1", service_code="botox")[1] == \
        "exception:not_included"
    send(client, webhook_practice, "treatment.completed", "A-2")
    assert send(client, webhook_practice, "treatment.completed", "A-3")[1] == "exception:no_balance"
    assert bal(membership, facial) == (0, 0)  # never negative
    assert sorted(RecordException.objects.values_list("kind", flat=True)) == ["no_balance", "not_included"]
    assert membership.member.events.filter(kind="record_exception").count() == 2


def test_record_service_codes_map_to_our_services(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    RecordServiceMap.objects.create(practice=webhook_practice, external_code="HF-60", service=facial)
    assert send(client, webhook_practice, "treatment.completed", "A-1", service_code="HF-60")[1] == "redeemed"
    assert bal(membership, facial) == (0, 0)


def test_member_number_links_when_the_patient_id_is_unknown(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    send(client, webhook_practice, "treatment.completed", "A-1", patient_id="",
         member_number=membership.member.member_number)
    assert bal(membership, facial) == (0, 0)


def test_before_the_redemptions_stage_treatments_are_shown_for_review_not_spent(
        client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    webhook_practice.automation_stage = AutomationStage.ALERTS
    webhook_practice.save()
    assert send(client, webhook_practice, "appointment.booked", "A-1")[1] == "observed"
    assert send(client, webhook_practice, "treatment.completed", "A-1")[1] == "review"
    assert bal(membership, facial) == (1, 1)
    [exc] = open_record_exceptions(practice_id=webhook_practice.pk)
    assert exc.kind == "review"
    with pytest.raises(ReasonRequired):
        resolve_record_exception(record_exception=exc, user=None, note=" ", now=timezone.now())
    resolve_record_exception(record_exception=exc, user=None, note="Redeemed at the desk", now=timezone.now())
    assert list(open_record_exceptions(practice_id=webhook_practice.pk)) == []


def test_bad_signature_unknown_practice_and_bad_payload_change_nothing(client, webhook_practice):
    payload = {"id": "evt_1", "type": "treatment.completed", "data": {"appointment_id": "A-1"}}
    wrong = signed_post(client, URL, payload, secret="not-it", **{"X-Medspa-Practice": webhook_practice.slug})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_signature"
    unknown = signed_post(client, URL + "nope/", payload)
    # An unknown practice is answered exactly like a bad signature: no practice-name discovery.
    assert (unknown.status_code, unknown.content) == (wrong.status_code, wrong.content)
    bad = signed_post(client, f"{URL}?practice={webhook_practice.slug}", {"id": "evt_2", "type": "x", "data": {}})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_payload"
    not_json = client.post(URL + webhook_practice.slug + "/", data=b"{", content_type="application/json",
                           headers={"X-Medspa-Signature": "sha256=00"})
    assert not_json.status_code == 401
    assert InboundEvent.objects.count() == 0


def test_practice_by_path_or_query_and_other_adapters_refused(client, webhook_practice, member_with_one_facial):
    payload = {"id": "evt_p", "type": "appointment.booked", "data": {"appointment_id": "A-1", "patient_id": "P-100",
                                                                    "service_code": "hydrafacial"}}
    assert signed_post(client, f"{URL}{webhook_practice.slug}/", payload).json()["status"] == "received"
    assert signed_post(client, f"{URL}?practice={webhook_practice.slug}", payload).json()["status"] == "duplicate"
    other = signed_post(client, f"/webhooks/records/zenoti/{webhook_practice.slug}/", payload)
    assert other.status_code == 401 and other.json()["code"] == "invalid_signature"
    assert client.get(f"{URL}{webhook_practice.slug}/").status_code == 405


def test_unparseable_stored_event_is_marked_failed_not_dropped(webhook_practice):
    row = InboundEvent.objects.create(source=f"record:webhook:{webhook_practice.pk}", event_id="e1", event_type="treatment.completed",
                                      payload={"type": "treatment.completed"}, practice=webhook_practice,
                                      received_at=timezone.now())
    assert process_inbound_event(inbound_id=row.pk, now=timezone.now() + timedelta(seconds=1)) == "failed"
    row.refresh_from_db()
    assert row.status == InboundStatus.FAILED and "WebhookRejected" in row.error


def test_the_inbox_sweep_processes_record_webhooks_too(client, webhook_practice, member_with_one_facial):
    from integrations import inbox

    membership, facial = member_with_one_facial
    payload = {"id": "evt_sweep", "type": "treatment.completed",
               "data": {"appointment_id": "A-7", "patient_id": "P-100", "service_code": "hydrafacial"}}
    signed_post(client, f"{URL}{webhook_practice.slug}/", payload)
    assert inbox.process_due(now=timezone.now()) == {"processed": 1}
    assert inbox.process_due(now=timezone.now()) == {}
    assert bal(membership, facial) == (0, 0)
    row = InboundEvent.objects.get(event_id="evt_sweep")
    assert row.status == InboundStatus.PROCESSED and row.error == "redeemed"
    inbox.reprocess(row, now=timezone.now())  # a manager's re-process spends nothing more
    assert bal(membership, facial) == (0, 0)


def test_intake_and_processing_stay_within_a_query_budget(client, webhook_practice, member_with_one_facial,
                                                          django_assert_max_num_queries):
    """Intake: find the practice, store once. Processing a treatment: resolve, redeem, timeline, outbox."""
    from integrations import inbox

    payload = {"id": "evt_q", "type": "treatment.completed",
               "data": {"appointment_id": "A-q", "patient_id": "P-100", "service_code": "hydrafacial"}}
    with django_assert_max_num_queries(6):
        signed_post(client, f"{URL}{webhook_practice.slug}/", payload)
    with django_assert_max_num_queries(26):
        assert inbox.process_due(now=timezone.now()) == {"processed": 1}


def test_two_practices_records_may_use_the_same_event_id(client, webhook_practice, member_with_one_facial):
    from tests.factories import PracticeFactory, glow_tier

    from .conftest import SECRET

    membership, facial = member_with_one_facial
    other = PracticeFactory(slug="elsewhere", record_adapter="webhook", record_webhook_secret=SECRET,
                            automation_stage=AutomationStage.REDEMPTIONS,
                            record_config={"outbound_url": "http://127.0.0.1:9/none"})
    other_tier, other_facial, _ = glow_tier(other)
    theirs = active_membership(tier=other_tier)
    theirs.member.record_patient_id = "P-100"
    theirs.member.save(update_fields=["record_patient_id"])

    ours_status, _ = send(client, webhook_practice, "treatment.completed", "apt-1", event_id="evt_shared")
    theirs_status, _ = send(client, other, "treatment.completed", "apt-1", event_id="evt_shared")
    assert (ours_status, theirs_status) == ("received", "received")
    assert bal(membership, facial) == (0, 0)
    assert bal(theirs, other_facial) == (0, 0)
    assert send(client, other, "treatment.completed", "apt-1", event_id="evt_shared")[0] == "duplicate"


def test_a_nul_character_in_a_record_webhook_is_400_and_nothing_stored(client, webhook_practice):
    payload = {"id": "evt_nul", "type": "treatment.completed",
               "data": {"appointment_id": "A-1", "patient_id": "P-\x00", "service_code": "hydrafacial"}}
    response = signed_post(client, URL, payload, **{"X-Medspa-Practice": webhook_practice.slug})
    assert response.status_code == 400 and response.json()["code"] == "invalid_payload"
    assert not InboundEvent.objects.exists()


def test_no_unsigned_request_tells_a_practice_that_exists_from_one_that_does_not(client, webhook_practice):
    """Unsigned probes — a body with a NUL byte, or the builtin adapter most practices use — get the
    answer an unknown practice gets: nothing before the signature says which practice slugs exist."""
    def answer(path, body=b'{"id": "x"}'):
        response = client.post(path, data=body, content_type="application/json")
        return response.status_code, response.content

    practice = PracticeFactory(slug="quiet-spa", record_adapter="builtin")
    for path in (f"{URL}{webhook_practice.slug}/", f"/webhooks/records/builtin/{practice.slug}/"):
        unknown = path.replace(webhook_practice.slug, "no-such-spa").replace(practice.slug, "no-such-spa")
        assert answer(path, b'{"id": "\x00"}') == answer(unknown, b'{"id": "\x00"}'), path
        assert answer(path) == answer(unknown), path
    assert InboundEvent.objects.count() == 0
