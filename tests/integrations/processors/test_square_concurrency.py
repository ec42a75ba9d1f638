"""On PostgreSQL, two inbox workers draining one Square member's history at once (renewals, a failed
charge, its payment, each delivered twice) leave the ledger as in-order delivery does: each paid
cycle refilled once, the member active, no dunning case left open."""

import pytest

from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import AutomationStage, EventKind, MembershipStatus
from memberships.models.practice import Processor
from tests.integrations.test_square_end_to_end import _history, at, balances
from tests.memberships.ledger_checks import hammer
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("pg-threads")]


def drain(now):
    for _ in range(50):
        if not inbox.process_due(now=now):
            return


def test_two_workers_draining_a_square_history_at_once_converge(glow, square, square_fake, client, monkeypatch):
    monkeypatch.setattr("integrations.intake.trigger_processing", lambda inbound_id: None)
    tier = glow[0]
    tier.practice.processor, tier.practice.automation_stage = Processor.SQUARE, AutomationStage.ALERTS
    tier.practice.save()
    m, events = _history(square, square_fake, tier)
    for body, headers in events * 2:
        assert client.post("/webhooks/square/", data=body, content_type="application/json",
                           headers=headers).status_code == 200
    assert InboundEvent.objects.filter(source="square").count() == len(events)

    results, errors = hammer(n=2, fn=lambda i: drain(at("2026-03-07")))
    assert not errors, errors
    drain(at("2026-03-08"))                    # anything one worker left waiting on the other's lock

    m.refresh_from_db()
    assert (m.status, m.cycle_number) == (MembershipStatus.ACTIVE, 3)
    assert balances(m) == {"hydrafacial": 3, "product-credit": 5000}
    assert sorted(Invoice.objects.filter(membership=m).values_list("status", flat=True)) == [InvoiceStatus.PAID] * 3
    assert m.events.filter(kind=EventKind.REFILLED).count() == 3
    assert not DunningCase.objects.filter(membership=m, status=DunningCaseStatus.OPEN).exists()
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
