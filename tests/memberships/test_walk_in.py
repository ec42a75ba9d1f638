"""On PostgreSQL the common walk-in (an active member, one lot) is one database call; it must leave
exactly what the ordinary path leaves, and hand everything else to it."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Delivery
from memberships import services
from memberships.errors import InsufficientBalance, MembershipNotRedeemable
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    Membership,
    Practice,
)
from tests.factories import active_membership

pytestmark = pytest.mark.postgres
ACTOR = services.Actor.system("front desk")


def _loaded(m) -> Membership:
    return Membership.objects.select_related("member__practice", "tier").get(pk=m.pk)


def _redeem(m, service, key, quantity=1):
    with CaptureQueriesContext(connection) as queries:
        entry = services.redeem_entitlement(membership=m, service=service, quantity=quantity, actor=ACTOR,
                                            idempotency_key=key, now=timezone.now())
    # (The test runs inside a transaction, so the call sits in a savepoint: not counted.)
    return entry, [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_one_call_leaves_what_the_ordinary_path_leaves(glow):
    tier, facial, credit = glow
    fast_m, slow_m = _loaded(active_membership(tier=tier)), active_membership(tier=tier)
    slow_m = Membership.objects.get(pk=slow_m.pk)            # nothing preloaded: the ordinary path
    fast, fast_sql = _redeem(fast_m, credit, "fast", quantity=1250)
    slow, slow_sql = _redeem(slow_m, credit, "slow", quantity=1250)
    assert len(fast_sql) == 1 and "ledger_redeem_walk_in" in fast_sql[0]
    assert not any("ledger_redeem_walk_in" in sql for sql in slow_sql)
    for entry in (fast, slow):
        stored = LedgerEntry.objects.get(pk=entry.pk)
        assert (stored.kind, stored.quantity, stored.balance_after, stored.reason) == \
               (EntryKind.REDEEM, -1250, 3750, "Redeemed at the front desk")
        assert (entry.pk, entry.balance_after, entry.quantity) == (stored.pk, 3750, -1250)
        assert CreditLot.objects.get(pk=stored.lot_id).remaining == 3750
        event = Event.objects.get(membership_id=stored.membership_id, kind=EventKind.REDEEMED)
        assert event.summary == "Redeemed $12.50 Product credit"
        assert event.payload == {"entry_id": stored.pk, "service_id": credit.pk, "quantity": 1250,
                                 "balance_after": 3750}
        assert EntitlementBalance.objects.get(membership_id=stored.membership_id, service=credit).balance == 3750


def test_a_replay_returns_the_first_entry_and_spends_nothing(glow):
    tier, facial, _ = glow
    m = _loaded(active_membership(tier=tier))
    first, _ = _redeem(m, facial, "twice")
    again, _ = _redeem(m, facial, "twice")
    assert again.pk == first.pk
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 0
    assert LedgerEntry.objects.filter(membership=m, kind=EntryKind.REDEEM).count() == 1


def test_what_is_not_a_plain_walk_in_gets_the_ordinary_answer(glow):
    tier, facial, _ = glow
    m = _loaded(active_membership(tier=tier))
    _redeem(m, facial, "last")
    with pytest.raises(InsufficientBalance):
        _redeem(m, facial, "none-left")
    paused = services.pause_membership(membership=active_membership(tier=tier),
                                       until=timezone.localdate() + timedelta(days=365),   # a year on, even from Feb 29
                                       actor=ACTOR, idempotency_key="p", now=timezone.now())
    with pytest.raises(MembershipNotRedeemable):
        _redeem(_loaded(paused), facial, "paused")
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEEM).count() == 1


def test_a_spend_across_two_lots_is_done_by_the_ordinary_path(glow):
    tier, _, credit = glow
    m = _loaded(active_membership(tier=tier))
    services.grant_opening_balance(membership=m, service=credit, quantity=1000, actor=ACTOR,
                                   idempotency_key="opening", now=timezone.now())
    entry, sql = _redeem(m, credit, "two-lots", quantity=5500)
    assert any("ledger_redeem_walk_in" in q for q in sql) and len(sql) > 1   # tried, then handed over
    assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 500
    assert LedgerEntry.objects.get(pk=entry.pk).quantity == -5500


def test_an_event_the_record_must_hear_of_gets_its_delivery_in_the_same_transaction(glow):
    tier, facial, _ = glow
    practice = Practice.objects.get(pk=tier.practice_id)
    practice.record_adapter = "webhook"
    practice.record_config = {"outbound_url": "http://127.0.0.1:9/none"}
    practice.save()
    m = _loaded(active_membership(tier=tier))
    entry, sql = _redeem(m, facial, "with-record")
    event = Event.objects.get(membership=m, kind=EventKind.REDEEMED)
    assert Delivery.objects.filter(event=event, destination="record").count() == 1
    with transaction.atomic():                     # inside a caller's transaction: a savepoint
        services.redeem_entitlement(membership=m, service=facial, actor=ACTOR, idempotency_key="with-record",
                                    now=timezone.now())
    assert LedgerEntry.objects.filter(membership=m, kind=EntryKind.REDEEM).count() == 1
    assert entry.balance_after == 0
