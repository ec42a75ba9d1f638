"""A treatment the record reports for a booked appointment spends what the record says was done, not
what was booked: 20 neurotoxin units held at booking, 12 injected, spends 12 and gives 8 back; one
unit held, three done, spends three (the other two from what is free). A completion the free balance
cannot cover beyond the hold spends the hold as booked (never left standing, keeping those units from
her for good) and goes to staff for the rest."""

from __future__ import annotations

import pytest

from integrations.models import RecordException
from memberships.models import (
    EntitlementBalance,
    EntryKind,
    LedgerEntry,
    Reservation,
    ReservationStatus,
    RolloverRule,
    ServiceKind,
)
from tests.factories import ServiceFactory, TierBenefitFactory, active_membership

from .test_inbound import send

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook_practice(on_adapter):
    from memberships.models import AutomationStage

    return on_adapter("webhook", stage=AutomationStage.REDEMPTIONS, outbound_url="http://127.0.0.1:9/none")


@pytest.fixture
def toxin_member(webhook_practice, glow):
    """A member whose tier grants 20 neurotoxin units a cycle."""
    tier = glow[0]
    toxin = ServiceFactory(practice=webhook_practice, name="Neurotoxin", code="neurotoxin",
                           kind=ServiceKind.TREATMENT, unit_value_cents=1400)
    TierBenefitFactory(tier=tier, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.NONE)
    membership = active_membership(tier=tier)
    member = membership.member
    member.record_patient_id = "P-200"
    member.save(update_fields=["record_patient_id"])
    return membership, toxin


def balance(membership, service):
    row = EntitlementBalance.objects.get(membership=membership, service=service)
    return row.balance, row.reserved


def spent(membership, service):
    return -sum(LedgerEntry.objects.filter(membership=membership, service=service, kind=EntryKind.REDEEM)
                .values_list("quantity", flat=True))


def test_fewer_units_done_than_booked_spends_what_was_done(client, webhook_practice, toxin_member):
    membership, toxin = toxin_member
    assert send(client, webhook_practice, "appointment.booked", "T-1", patient_id="P-200",
                service_code="neurotoxin", quantity=20)[1] == "held"
    assert balance(membership, toxin) == (20, 20)
    assert send(client, webhook_practice, "treatment.completed", "T-1", patient_id="P-200",
                service_code="neurotoxin", quantity=12)[1] == "committed"
    assert balance(membership, toxin) == (8, 0)           # 12 spent, the other 8 free again
    assert spent(membership, toxin) == 12
    assert Reservation.objects.get(external_ref="T-1").status == ReservationStatus.COMMITTED
    # the same treatment reported again spends nothing more
    assert send(client, webhook_practice, "treatment.completed", "T-1", patient_id="P-200",
                service_code="neurotoxin", quantity=12)[1] == "already_spent"
    assert balance(membership, toxin) == (8, 0)


def test_more_units_done_than_booked_spends_what_was_done(client, webhook_practice, toxin_member):
    membership, toxin = toxin_member
    send(client, webhook_practice, "appointment.booked", "T-2", patient_id="P-200", service_code="neurotoxin",
         quantity=10)
    assert send(client, webhook_practice, "treatment.completed", "T-2", patient_id="P-200",
                service_code="neurotoxin", quantity=14)[1] == "committed"
    assert balance(membership, toxin) == (6, 0)
    assert spent(membership, toxin) == 14


def test_more_done_than_the_hold_and_the_free_balance_cover_spends_the_hold_and_asks_staff_for_the_rest(
        client, webhook_practice, toxin_member):
    membership, toxin = toxin_member
    send(client, webhook_practice, "appointment.booked", "T-3", patient_id="P-200", service_code="neurotoxin",
         quantity=10)
    send(client, webhook_practice, "appointment.booked", "T-4", patient_id="P-200", service_code="neurotoxin",
         quantity=10)
    outcome = send(client, webhook_practice, "treatment.completed", "T-3", patient_id="P-200",
                   service_code="neurotoxin", quantity=12)[1]
    assert outcome == "exception:no_balance"
    # the 10 booked were done: spent, not left on hold for good; the other booking's hold stands
    assert balance(membership, toxin) == (10, 10)
    assert spent(membership, toxin) == 10
    assert Reservation.objects.get(external_ref="T-3").status == ReservationStatus.COMMITTED
    assert Reservation.objects.get(external_ref="T-4").status == ReservationStatus.HELD
    detail = RecordException.objects.get(appointment_ref="T-3").detail
    assert "the booked 10 were spent" in detail and "the other 2 are more than the balance has free" in detail
    # the same report again spends nothing more
    assert send(client, webhook_practice, "treatment.completed", "T-3", patient_id="P-200",
                service_code="neurotoxin", quantity=12)[1] == "already_spent"
    assert balance(membership, toxin) == (10, 10)


def test_a_completion_that_says_no_quantity_commits_the_hold_as_booked(client, webhook_practice, toxin_member):
    membership, toxin = toxin_member
    send(client, webhook_practice, "appointment.booked", "T-5", patient_id="P-200", service_code="neurotoxin",
         quantity=20)
    assert send(client, webhook_practice, "treatment.completed", "T-5", patient_id="P-200",
                service_code="neurotoxin")[1] == "committed"
    assert balance(membership, toxin) == (0, 0)
    assert spent(membership, toxin) == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_completion_beyond_its_hold_and_a_walk_in_race_for_the_free_units(webhook_practice, glow):
    """20 units: 10 held for a booked appointment, 10 free. The record reports 14 done (4 beyond the hold)
    while the desk redeems 8: together they want 12 free units of 10, so whichever goes first is spent
    whole; the completion coming second spends only its hold (the rest goes to staff), and the balance
    never goes below what is held."""
    from django.utils import timezone

    from integrations.records.inbound import hold_key, spend_for_appointment
    from memberships import services
    from memberships.errors import InsufficientBalance
    from memberships.models import Membership, Service
    from tests.memberships.ledger_checks import hammer

    tier = glow[0]
    toxin = ServiceFactory(practice=webhook_practice, name="Neurotoxin", code="neurotoxin", unit_value_cents=1400)
    TierBenefitFactory(tier=tier, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.NONE)
    membership = active_membership(tier=tier)
    services.reserve_entitlement(membership=membership, service=toxin, quantity=10, actor=services.Actor.record(),
                                 idempotency_key=hold_key(webhook_practice, "T-9"), now=timezone.now())

    def act(i):
        fresh = Membership.objects.select_related("member__practice", "tier").get(pk=membership.pk)
        service = Service.objects.get(pk=toxin.pk)
        try:
            if i == 0:
                return spend_for_appointment(practice=webhook_practice, membership=fresh, service=service,
                                             appointment_id="T-9", quantity=14, actor=services.Actor.record(),
                                             now=timezone.now())
            services.redeem_entitlement(membership=fresh, service=service, quantity=8,
                                        actor=services.Actor.system(), idempotency_key="walk-in-8",
                                        now=timezone.now())
            return "walk-in"
        except InsufficientBalance:
            return "refused"

    results, errors = hammer(act, 2)
    assert errors == []
    assert sorted(results) in (["committed", "refused"], ["refused", "walk-in"])
    if "committed" in results:
        assert balance(membership, toxin) == (6, 0) and spent(membership, toxin) == 14
    else:   # the walk-in first: the completion spends its 10 booked, the 4 beyond are for staff
        assert balance(membership, toxin) == (2, 0) and spent(membership, toxin) == 18
        assert Reservation.objects.get(idempotency_key=hold_key(webhook_practice, "T-9")).status == \
            ReservationStatus.COMMITTED
