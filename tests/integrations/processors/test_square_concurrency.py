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
from tests.integrations.processors.test_square_sync import member_with_card  # noqa: F401  (fixture)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


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


def test_a_tier_change_now_and_a_cancellation_delivered_at_once_leave_no_subscription_billing(
        member_with_card, square_fake, client):
    """The desk moves a member to another tier "now" (at Square: a new subscription, the old one ending)
    and the member cancels a moment later; two workers deliver both at once. Whatever the order, no
    subscription may go on billing at Square: the cancellation must reach the subscription the
    tier change made, not only the one it replaced."""
    import time
    from datetime import timedelta

    from integrations import outbox
    from integrations.models import Delivery
    from memberships import services
    from memberships.models import Membership
    from tests.factories import TierFactory
    from tests.integrations.processors.test_square_sync import enroll, work

    member, tier = member_with_card
    m = enroll(member, tier, square_fake.now)
    work(square_fake.now)
    assert all(a.status_code == 200 for a in square_fake.deliver(client))
    work(square_fake.now)
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE
    lite = TierFactory(practice=tier.practice, code="lite", name="Lite", price_cents=14900)
    now = square_fake.now + timedelta(days=3)
    services.change_tier(membership=m, new_tier=lite, effective="now", actor=services.Actor.system(),
                         idempotency_key="now", now=now)
    change = Delivery.objects.filter(destination="processor").order_by("pk").last()
    square_fake.slow_down("POST", "/v2/subscriptions", 1.5)

    def worker(i):
        if i == 0:                                   # the tier change, Square slow to make the new one
            return outbox.deliver_one(change.pk, now=now)
        time.sleep(0.5)                              # meanwhile the member cancels, another worker delivers it
        services.cancel_membership(membership=Membership.objects.get(pk=m.pk), actor=services.Actor.system(),
                                   idempotency_key="cancel", now=now)
        return outbox.deliver_one(Delivery.objects.filter(destination="processor").order_by("pk").last().pk,
                                  now=now)

    results, errors = hammer(n=2, fn=worker)
    assert not errors, errors
    work(now + timedelta(hours=1))

    m.refresh_from_db()
    assert m.status == MembershipStatus.CANCELLED
    billing = [s["id"] for s in square_fake.subscriptions.values()
               if s["status"] != "CANCELED" and not s.get("canceled_date")]
    assert billing == []
