"""On PostgreSQL, with real threads and real row locks: the last credit is spent exactly once, and
one idempotency key makes exactly one entry, however many desks press at once."""

import pytest
from django.utils import timezone

from memberships import services
from memberships.errors import InsufficientBalance
from memberships.models import EntitlementBalance, LedgerEntry
from tests.factories import active_membership

from .ledger_checks import hammer

# One xdist group: two workers running 50-thread tests at once would pass PostgreSQL's 100 connections.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("pg-threads")]

THREADS = 50


@pytest.mark.parametrize("attempt", range(3))
def test_fifty_desks_redeem_the_last_facial(glow, attempt):
    tier, facial, _ = glow
    membership = active_membership(tier=tier)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.redeem_entitlement(
        membership=membership, service=facial, actor=services.Actor.system(), idempotency_key=f"desk-{attempt}-{i}",
        now=now))

    assert len(results) == 1
    assert len(errors) == THREADS - 1 and all(isinstance(e, InsufficientBalance) for e in errors), errors[:3]
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 0
    assert LedgerEntry.objects.filter(membership=membership, service=facial, kind="redeem").count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_fifty_replays_of_one_key_make_one_entry(glow, attempt):
    tier, facial, credit = glow
    membership = active_membership(tier=tier)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.redeem_entitlement(
        membership=membership, service=credit, quantity=100, actor=services.Actor.system(),
        idempotency_key=f"one-click-{attempt}", now=now))

    assert errors == []
    assert len({entry.pk for entry in results}) == 1
    assert LedgerEntry.objects.filter(idempotency_key=f"one-click-{attempt}").count() == 1
    assert EntitlementBalance.objects.get(membership=membership, service=credit).balance == 4900


def test_fifty_concurrent_refills_of_one_invoice_grant_once(glow):
    tier, facial, credit = glow
    membership = active_membership(tier=tier)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.refill_entitlements(
        membership=membership, cycle_key="in_same_invoice", actor=services.Actor.processor(), now=now))

    assert errors == []
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 2  # 1 carried + 1
    assert LedgerEntry.objects.filter(membership=membership, cycle_key="in_same_invoice").count() == 2
