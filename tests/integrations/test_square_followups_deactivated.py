"""A membership cancelled while Square has its subscription DEACTIVATED (Square stopped billing what it
cannot bill: the location cannot take payments, the customer has no name or email). It bills nothing
now, but ResumeSubscription "resume[s] a paused or a deactivated subscription": resumed at Square, it
would bill a member the ledger cancelled. Square documents CancelSubscription for an active (or
paused) subscription and says nothing of a deactivated one, so the cancellation is sent: taken, the
subscription ends; refused, the delivery says so and reconciliation shows the manager a deactivated
subscription of a cancelled membership to cancel at Square. SQLite and PostgreSQL."""

import pytest
from django.utils import timezone

from billing.models import Discrepancy
from billing.reconciliation.runs import run_reconciliation
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.models import AutomationStage, MembershipStatus

from .test_square_end_to_end import deliver, enroll, work, world  # noqa: F401  (fixtures)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

REFUSED_WORDS = ("Cancelled in the ledger, but Square only deactivated the subscription, not cancelled: resumed at "
                 "Square it would bill her again; cancel it in Square's Dashboard")


def cancelled_while_deactivated(world, square, fake, client):
    practice = world["practice"]
    practice.automation_stage = AutomationStage.TIER_SYNC              # cancellations reach Square
    practice.save(update_fields=["automation_stage"])
    member, membership, sub_id = enroll(square, fake, world["tier"])
    deliver(fake, client)
    work(fake.now)
    fake.subscriptions[sub_id]["status"] = "DEACTIVATED"        # e.g. the location stopped taking payments
    services.cancel_membership(membership=membership, actor=services.Actor.system(), idempotency_key="cancel",
                               now=fake.now)
    work(fake.now)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED
    delivery = Delivery.objects.get(event__membership=membership, event__kind="cancelled", destination="processor")
    return member, membership, sub_id, delivery


def discrepancies(practice):
    return [(d.member_number, d.kind, d.message) for d in Discrepancy.objects.filter(practice=practice)]


def test_square_taking_the_cancellation_ends_the_deactivated_subscription(world, square, square_fake, client):
    square_fake.cancels_deactivated = True
    member, membership, sub_id, delivery = cancelled_while_deactivated(world, square, square_fake, client)
    assert square_fake.calls("POST", f"/v2/subscriptions/{sub_id}/cancel") == 1
    assert square_fake.subscriptions[sub_id]["canceled_date"]              # a resume could not bill her now
    assert delivery.status == DeliveryStatus.DELIVERED and "cancel_refused" not in delivery.result
    run_reconciliation(practice=world["practice"], now=timezone.now())
    assert [d for d in discrepancies(world["practice"]) if d[0] == member.member_number] == []


def test_square_refusing_it_says_so_and_reconciliation_shows_it_to_the_manager(world, square, square_fake, client):
    member, membership, sub_id, delivery = cancelled_while_deactivated(world, square, square_fake, client)
    assert square_fake.calls("POST", f"/v2/subscriptions/{sub_id}/cancel") == 1
    assert not square_fake.subscriptions[sub_id].get("canceled_date")
    assert delivery.status == DeliveryStatus.DELIVERED                      # nothing a retry would change
    assert delivery.result["cancel_refused"].startswith(
        f"Square refused to cancel deactivated subscription {sub_id}")
    run_reconciliation(practice=world["practice"], now=timezone.now())
    assert [d for d in discrepancies(world["practice"]) if d[0] == member.member_number] == [
        (member.member_number, "status_mismatch", REFUSED_WORDS)]

    work(timezone.now())                                                    # the outbox sends nothing more
    assert square_fake.calls("POST", f"/v2/subscriptions/{sub_id}/cancel") == 1
