"""Record webhooks arrive in any order and any number of times: the ledger ends in the same state.

A booking holds, a cancellation releases, a completed treatment spends once; a cancellation or a
completion is remembered by appointment id, so a booking that arrives after either holds nothing."""

from __future__ import annotations

from itertools import permutations

import pytest
from django.utils import timezone

from integrations.models import RecordAppointment, RecordException
from integrations.records.base import AppointmentBooked, AppointmentCancelled, TreatmentCompleted
from integrations.records.inbound import apply_record_event, hold_key, spend_key
from memberships.models import AutomationStage, EntryKind, LedgerEntry, Reservation, ReservationStatus
from tests.factories import active_membership
from tests.memberships.ledger_checks import assert_ledger_consistent, hammer

from .test_inbound import bal, member_with_one_facial, send, webhook_practice  # noqa: F401  (fixtures)

TYPES = {"book": "appointment.booked", "cancel": "appointment.cancelled", "complete": "treatment.completed"}


def run(client, practice, steps, appointment="A-1"):
    return [send(client, practice, TYPES[step], appointment)[1] for step in steps]


def spends(practice, appointment="A-1"):
    return LedgerEntry.objects.filter(kind=EntryKind.REDEEM, idempotency_key=spend_key(practice, appointment)).count()


def holds():
    return Reservation.objects.filter(status=ReservationStatus.HELD).count()


@pytest.mark.parametrize("order", list(permutations(["book", "cancel"])), ids="-".join)
def test_booking_and_cancellation_in_either_order_leave_no_hold(client, webhook_practice, member_with_one_facial,
                                                                 order):
    membership, facial = member_with_one_facial
    run(client, webhook_practice, order)
    assert bal(membership, facial) == (1, 1) and holds() == 0
    # replays, in the same order and backwards, change nothing
    run(client, webhook_practice, order + order[::-1])
    assert bal(membership, facial) == (1, 1) and holds() == 0
    assert spends(webhook_practice) == 0
    assert RecordException.objects.count() == 0
    assert_ledger_consistent(membership)


def test_a_booking_after_its_cancellation_says_so(client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    assert run(client, webhook_practice, ["cancel", "book", "book"]) == \
        ["nothing_held", "already_cancelled", "already_cancelled"]
    row = RecordAppointment.objects.get(appointment_ref="A-1")
    assert row.cancelled_at is not None and row.cancel_reason == "cancelled"
    assert not Reservation.objects.filter(idempotency_key=hold_key(webhook_practice, "A-1")).exists()


@pytest.mark.parametrize("order", list(permutations(["book", "complete"])), ids="-".join)
def test_booking_and_completion_in_either_order_spend_once_and_hold_nothing(
        client, webhook_practice, member_with_one_facial, order):
    membership, facial = member_with_one_facial
    run(client, webhook_practice, order)
    assert bal(membership, facial) == (0, 0) and holds() == 0 and spends(webhook_practice) == 1
    run(client, webhook_practice, order + order[::-1])
    assert bal(membership, facial) == (0, 0) and holds() == 0 and spends(webhook_practice) == 1
    assert RecordException.objects.count() == 0
    assert_ledger_consistent(membership)


@pytest.mark.parametrize("order", list(permutations(["book", "cancel", "complete"])), ids="-".join)
def test_any_order_of_book_cancel_complete_spends_once_and_holds_nothing(
        client, webhook_practice, member_with_one_facial, order):
    """The treatment happened (the record says completed), so it is spent once, whatever came first."""
    membership, facial = member_with_one_facial
    run(client, webhook_practice, order)
    run(client, webhook_practice, order[::-1])
    assert bal(membership, facial) == (0, 0) and holds() == 0 and spends(webhook_practice) == 1
    assert_ledger_consistent(membership)


def test_a_late_booking_after_a_completion_that_could_not_be_spent_holds_nothing(
        client, webhook_practice, member_with_one_facial):
    """The treatment came when the balance was used up (an exception for staff); a booking arriving
    afterwards must not hold the unit a later refill brings."""
    membership, facial = member_with_one_facial
    assert run(client, webhook_practice, ["complete"], appointment="A-0") == ["redeemed"]
    assert run(client, webhook_practice, ["complete", "book"]) == ["exception:no_balance", "already_completed"]
    assert holds() == 0
    assert list(RecordException.objects.values_list("kind", flat=True)) == ["no_balance"]


def test_a_late_booking_after_a_treatment_held_for_review_holds_nothing_later(
        client, webhook_practice, member_with_one_facial):
    membership, facial = member_with_one_facial
    webhook_practice.automation_stage = AutomationStage.ALERTS
    webhook_practice.save(update_fields=["automation_stage"])
    assert run(client, webhook_practice, ["complete"]) == ["review"]
    webhook_practice.automation_stage = AutomationStage.REDEMPTIONS
    webhook_practice.save(update_fields=["automation_stage"])
    assert run(client, webhook_practice, ["book"]) == ["already_completed"]
    assert bal(membership, facial) == (1, 1)


def test_appointments_are_kept_apart(client, webhook_practice, member_with_one_facial, glow):
    """A cancellation of one appointment does not stop another appointment's booking."""
    membership, facial = member_with_one_facial
    run(client, webhook_practice, ["cancel"], appointment="A-1")
    assert run(client, webhook_practice, ["book"], appointment="A-2") == ["held"]
    assert bal(membership, facial) == (1, 0)


def patient_on(practice, glow, adapter):
    """A Glow member known to the record as patient P-1, the practice on `adapter` in `redemptions`."""
    tier, _, _ = glow
    practice.record_adapter = adapter
    practice.automation_stage = AutomationStage.REDEMPTIONS
    practice.save()
    membership = active_membership(tier=tier)
    membership.member.record_patient_id = "P-1"
    membership.member.save(update_fields=["record_patient_id"])
    return membership


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("adapter", ["webhook", "fhir", "zenoti"])
def test_a_booking_and_its_cancellation_applied_at_once_converge(practice, glow, adapter):
    """Two workers apply the booking and the cancellation of one appointment at the same instant
    (any adapter: the rule lives in the shared inbound processing): no hold is left, every time."""
    membership = patient_on(practice, glow, adapter)
    now = timezone.now()
    for attempt in range(8):
        ref = f"A-race-{attempt}"
        events = [AppointmentBooked(appointment_id=ref, patient_id="P-1", service_code="hydrafacial"),
                  AppointmentCancelled(appointment_id=ref, patient_id="P-1", service_code="hydrafacial")]
        results, errors = hammer(lambda i: apply_record_event(practice=practice, event=events[i], now=now), n=2)
        assert errors == []
        assert holds() == 0, results
    assert_ledger_consistent(membership)


@pytest.mark.parametrize("adapter", ["webhook", "fhir", "zenoti"])
def test_every_adapter_shares_the_rule(practice, glow, adapter):
    patient_on(practice, glow, adapter)
    now = timezone.now()
    fields = dict(appointment_id="A-x", patient_id="P-1", service_code="hydrafacial")
    assert apply_record_event(practice=practice, event=AppointmentCancelled(**fields), now=now) == "nothing_held"
    assert apply_record_event(practice=practice, event=AppointmentBooked(**fields), now=now) == "already_cancelled"
    assert apply_record_event(practice=practice, event=TreatmentCompleted(**fields), now=now) == "redeemed"
    assert holds() == 0 and spends(practice, "A-x") == 1
