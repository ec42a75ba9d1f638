"""A membership payment refunded at Stripe, or disputed by the member's bank, is no longer ignored: the
member's timeline says so in plain words — the amount, the day (the practice's), a dispute's reason —
once however often Stripe reports it, and no balance moves (whether those benefits go is the
practice's call). A dispute names only its charge: the charge's customer is read from Stripe first, and
while Stripe cannot be reached the event waits."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import pytest

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, Event, EventKind
from tests.factories import MemberFactory, active_membership
from tests.support.stripe_events import load_event, serve_stripe_reads

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 14, 18, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def member(practice, glow):
    practice.timezone = "America/Los_Angeles"
    practice.save(update_fields=["timezone"])
    membership = active_membership(tier=glow[0], member=MemberFactory(practice=practice,
                                                                      processor_customer_id="cus_TUfixture0001"))
    return membership


def notes(membership):
    return list(Event.objects.filter(member=membership.member, kind=EventKind.NOTE).values_list("summary", flat=True))


def balances(membership):
    return sorted(EntitlementBalance.objects.filter(membership=membership).values_list("service__code", "balance"))


def deliver(event):
    inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True, now=NOW)
    inbox.process_due(now=NOW)
    return InboundEvent.objects.get(event_id=event["id"])


def test_a_refund_is_noted_on_the_member_s_timeline_once_and_moves_no_balance(member):
    before = balances(member)
    row = deliver(load_event("charge_refunded_partial.json"))
    assert row.status == InboundStatus.PROCESSED
    assert notes(member) == ["Payment refunded at Stripe on Jan 12, 2026: $99.50 of $199.00 refunded so far — "
                             "balances unchanged; a manager adjusts them if the refunded benefits should not stay"]
    assert balances(member) == before
    # Re-processed from the admin: still one note.
    inbox.reprocess(row, now=NOW)
    assert len(notes(member)) == 1


def test_a_second_partial_refund_says_how_much_is_refunded_in_all(member):
    """Stripe's `charge.refunded` carries the charge, whose `amount_refunded` is the total so far: the
    second note says $149.50 of $199.00 refunded so far (not that $149.50 went back this time)."""
    deliver(load_event("charge_refunded_partial.json"))
    second = load_event("charge_refunded_partial.json")
    second["id"] = second["id"] + "_second"
    second["data"]["object"]["amount_refunded"] = 14950
    deliver(second)
    summaries = [note.split(" — ")[0] for note in notes(member)]
    assert len(summaries) == 2 and set(summaries) == {
        "Payment refunded at Stripe on Jan 12, 2026: $99.50 of $199.00 refunded so far",
        "Payment refunded at Stripe on Jan 12, 2026: $149.50 of $199.00 refunded so far"}


def test_a_dispute_reads_its_charge_and_is_noted(member, settings, httpserver):
    serve_stripe_reads(settings, httpserver, charge="charge_renewal_succeeded.json")
    before = balances(member)
    row = deliver(load_event("charge_dispute_created.json"))
    assert row.status == InboundStatus.PROCESSED
    assert notes(member) == ["Payment of $199.00 disputed at Stripe on Jan 13, 2026 (product not received) — "
                             "balances unchanged until the practice decides; the bank holds the money while the "
                             "dispute is open"]
    assert balances(member) == before


def test_a_dispute_waits_while_stripe_cannot_be_reached(member, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"       # nothing listens there
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    row = deliver(load_event("charge_dispute_created.json"))
    assert row.status == InboundStatus.RECEIVED and row.error.startswith("waiting")
    assert notes(member) == []


def test_a_refund_of_someone_who_is_no_member_changes_nothing(member):
    event = load_event("charge_refunded_partial.json")
    event["data"]["object"]["customer"] = "cus_someone_else"
    assert deliver(event).status == InboundStatus.PROCESSED
    assert notes(member) == []
