"""Square's event pipeline converges as Stripe's does (tests/integrations/test_pipeline_convergence.py, the
same property and machinery): a membership's Square history — generated from the documented fixtures
(tests/support/square_history.py): charges paid at once, failed and paid later on the invoice's page (a
part of it first, sometimes), or never, an unpaid invoice cancelled by the practice, and a cancellation — delivered shuffled, partly twice, in
batches, with the membership sometimes enrolled only after the first batches, ends in the state the same
history gives delivered once in real-time order: status, cycle, period, balances, the ledger (one refill
per paid invoice), open dunning cases and chart flags, mirrored invoices; no event failed. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, Phase, given, note, settings as hypothesis_settings, strategies as st
from square.types.invoice_canceled_event import InvoiceCanceledEvent
from square.types.invoice_payment_made_event import InvoicePaymentMadeEvent
from square.types.invoice_scheduled_charge_failed_event import InvoiceScheduledChargeFailedEvent
from square.types.subscription_updated_event import SubscriptionUpdatedEvent

from integrations import inbox
from integrations.models import InboundStatus
from memberships.models import AutomationStage, EntryKind, LedgerEntry, MembershipStatus
from memberships.models.practice import Processor
from tests.support.square_history import (
    CyclePlan,
    SquarePlan,
    build_square_history,
    inbound_counts,
    new_membership,
    square_plans,
    store,
)
from tests.support.square_models import check
from tests.support.stripe_history import capture_state, drain

pytestmark = pytest.mark.django_db

TAG = "h01"
MODELS = {"invoice.payment_made": InvoicePaymentMadeEvent, "invoice.canceled": InvoiceCanceledEvent,
          "invoice.scheduled_charge_failed": InvoiceScheduledChargeFailedEvent,
          "subscription.updated": SubscriptionUpdatedEvent}


@pytest.fixture
def tier(glow):
    tier = glow[0]
    tier.practice.processor, tier.practice.automation_stage = Processor.SQUARE, AutomationStage.ALERTS
    tier.practice.save()
    return tier


@contextmanager
def fresh_state():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def state_of(membership) -> dict:
    return {**capture_state(membership, tag=TAG), "inbound": inbound_counts(TAG)}


def reference_state(tier, plan: SquarePlan) -> dict:
    """The plan delivered once each, in real-time order, processed as each arrives."""
    with fresh_state():
        membership = new_membership(tier, tag=TAG)
        for item in build_square_history(plan, tag=TAG):
            store(item.event, now=item.created)
            inbox.process_due(now=item.created)
        return state_of(membership)


def after(history):
    return max(item.created for item in history) + timedelta(minutes=1)


_references: dict[SquarePlan, dict] = {}
EXAMPLES = 30 if connection.vendor == "sqlite" else 15


@hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=square_plans(max_invoices=4), data=st.data())
def test_shuffled_duplicated_batched_square_delivery_ends_as_in_real_time_order(tier, plan, data):
    note(f"plan: {plan}")
    if plan not in _references:
        _references[plan] = reference_state(tier, plan)
    reference = _references[plan]
    history = build_square_history(plan, tag=TAG)
    partly = sum(1 for item in history if item.label.endswith(".partly_paid"))   # the rest still owed
    assert reference["inbound"] == {k: v for k, v in {InboundStatus.PROCESSED: len(history) - partly,
                                                      InboundStatus.IGNORED: partly}.items() if v}

    with fresh_state():
        exists_after = data.draw(st.sampled_from([0, 0, 0, 1, 2]), label="batches before the membership exists")
        membership = new_membership(tier, tag=TAG) if exists_after == 0 else None
        twice = data.draw(st.lists(st.booleans(), min_size=len(history), max_size=len(history)), label="twice")
        deliveries = list(history) + [item for item, again in zip(history, twice) if again]
        order = data.draw(st.permutations(range(len(deliveries))), label="order")
        note(f"delivered: {[deliveries[i].label for i in order]}")
        start, position, batch = after(history), 0, 0
        while position < len(order):
            now = start + timedelta(seconds=batch)
            if membership is None and batch == exists_after:
                membership = new_membership(tier, tag=TAG, now=now)
            size = data.draw(st.integers(1, 3), label="batch size")   # small: orders across batches
            for i in order[position:position + size]:
                store(copy.deepcopy(deliveries[i].event), now=now)
            inbox.process_due(now=now)
            position, batch = position + size, batch + 1
        if membership is None:
            membership = new_membership(tier, tag=TAG, now=start + timedelta(seconds=batch))
        drain(now=start + timedelta(days=1))
        state = state_of(membership)

    assert state == reference


def test_the_generated_events_are_squares_shapes_and_the_reference_reads_right(tier):
    """Every generated event passes the strict check against the SDK's models, and the in-order
    reference of a rich history is what a member would expect: each paid cycle refilled once, the
    last failed cycle left unpaid keeps the membership past due with its case open."""
    plan = SquarePlan((CyclePlan(failed=False, paid=True), CyclePlan(failed=True, paid=True),
                       CyclePlan(failed=False, paid=True), CyclePlan(failed=True, paid=False)))
    cancelled = SquarePlan((CyclePlan(failed=False, paid=True), CyclePlan(failed=True, paid=False, partial=True,
                                                                          forgiven=True)))
    for item in build_square_history(plan, tag=TAG) + build_square_history(cancelled, tag=TAG):
        check(MODELS[item.event["type"]], item.event)
    with fresh_state():
        membership = new_membership(tier, tag=TAG)
        for item in build_square_history(plan, tag=TAG):
            store(item.event, now=item.created)
            inbox.process_due(now=item.created)
        state = state_of(membership)
        grants = LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT)
        assert sorted(set(grants.values_list("cycle_key", flat=True))) == [f"inv:0-{TAG}-{k}" for k in (1, 2, 3)]
    assert (state["status"], state["cycle_number"]) == (MembershipStatus.PAST_DUE, 3)
    assert state["open_dunning_cases"] == [f"inv:0-{TAG}-4"]
    assert state["inbound"] == {InboundStatus.PROCESSED: 5}


def test_a_part_paid_after_a_failed_charge_keeps_the_membership_past_due_in_any_order(tier):
    """February's charge fails and a part of it is paid on its page: whatever order Square's events come
    in, the membership stays past due with February's case open and February refills nothing."""
    plan = SquarePlan((CyclePlan(failed=False, paid=True), CyclePlan(failed=True, paid=False, partial=True)))
    history = build_square_history(plan, tag=TAG)
    assert [item.label for item in history] == ["inv1.paid", "inv2.failed", "inv2.partly_paid"]
    for order in (history, list(reversed(history))):
        with fresh_state():
            membership = new_membership(tier, tag=TAG)
            for item in order:
                store(copy.deepcopy(item.event), now=after(history))
                inbox.process_due(now=after(history))
            state = state_of(membership)
            grants = set(LedgerEntry.objects.filter(membership=membership, kind=EntryKind.GRANT)
                         .values_list("cycle_key", flat=True))
        assert (state["status"], state["open_dunning_cases"]) == (MembershipStatus.PAST_DUE, [f"inv:0-{TAG}-2"])
        assert grants == {f"inv:0-{TAG}-1"}


# --- named examples, each in the adverse order ---------------------------------------------------

@pytest.mark.parametrize("order", ["older paid after it", "every older invoice after it"])
def test_the_latest_failed_square_charge_keeps_the_membership_past_due(tier, order):
    """Cycle 3's charge failed; cycles 1 and 2 were paid before it but their events arrive after its
    failure. The membership ends past due with cycle 3's case open, as in real-time order."""
    plan = SquarePlan((CyclePlan(False, True), CyclePlan(False, True), CyclePlan(True, False)))
    reference = reference_state(tier, plan)
    history = {item.label: item for item in build_square_history(plan, tag=TAG)}
    labels = (["inv1.paid", "inv3.failed", "inv2.paid"] if order == "older paid after it"
              else ["inv3.failed", "inv2.paid", "inv1.paid"])
    with fresh_state():
        membership = new_membership(tier, tag=TAG)
        now = after(history.values())
        for label in labels:
            store(history[label].event, now=now)
            inbox.process_due(now=now)
        state = state_of(membership)
    assert (state["status"], state["open_dunning_cases"]) == (MembershipStatus.PAST_DUE, [f"inv:0-{TAG}-3"])
    assert state == reference


@pytest.mark.parametrize("arrives", ["before the payment", "after the payment"])
def test_a_cycle_paid_before_the_cancellation_is_granted_and_frozen_whichever_comes_first(tier, arrives):
    plan = SquarePlan((CyclePlan(False, True), CyclePlan(True, True)), cancelled=True)
    reference = reference_state(tier, plan)
    history = {item.label: item for item in build_square_history(plan, tag=TAG)}
    labels = ["inv1.paid", "inv2.failed"] + (["cancelled", "inv2.paid"] if arrives == "before the payment"
                                             else ["inv2.paid", "cancelled"])
    with fresh_state():
        membership = new_membership(tier, tag=TAG)
        now = after(history.values())
        for label in labels:
            store(history[label].event, now=now)
            inbox.process_due(now=now)
        state = state_of(membership)
    assert state["status"] == MembershipStatus.CANCELLED and state["cycle_number"] == 2
    assert state == reference
