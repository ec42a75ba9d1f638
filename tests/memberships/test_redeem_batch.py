"""Redemptions in a batch write exactly what redemptions one by one write.

`redeem_batch.redeem_many` (the record's treatments of an inbox batch) and `redeem_entitlement` (the
rule book; on PostgreSQL its walk-in function) must leave the same rows — balances, lots, ledger
entries and their lot movements, timeline events and their outbox deliveries — and refuse the same
redemptions with the same words: a draw across two lots, units on hold, credit of a service the tier
does not include, a paused membership, a short balance, a bad quantity, a key replayed from before
and within the batch. Twins get the same history, one through each path, and are compared. Runs on
PostgreSQL and SQLite."""

from __future__ import annotations

import re

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from integrations.models import Delivery
from memberships import services
from memberships.errors import LedgerError
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    Event,
    EventKind,
    LedgerEntry,
    LotMovement,
    Membership,
    RolloverRule,
)
from memberships.services import redeem_batch
from memberships.roles import MANAGER
from tests.factories import (
    MemberFactory,
    ServiceFactory,
    TierBenefitFactory,
    active_membership,
    glow_tier,
    staff_user,
)

pytestmark = pytest.mark.django_db

User = get_user_model()
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=dt_timezone.utc)
ACTOR = services.Actor.record("webhook")

# (member, service code, quantity, key): member "a" is active, "p" paused; "k1" again is a replay.
HISTORY = [
    ("a", "hydrafacial", 2, "k1"),        # this cycle's lot, then the imported one: two lots
    ("a", "product-credit", 1500, "k2"),
    ("p", "hydrafacial", 1, "k3"),        # paused: refused
    ("a", "product-credit", 4000, "k4"),  # 3,500 left: refused
    ("a", "toxin", 19, "k5"),             # from this cycle's lot, which expires, not the older imported one
    ("a", "toxin", 6, "k6"),              # 6 left, but one is on hold
    ("a", "peel", 1, "k7"),               # not in the tier, but granted by hand: spendable
    ("a", "peel", 1, "k8"),               # ... until it is gone
    ("a", "hydrafacial", 1, "k1"),        # a replay of k1: nothing spent
    ("a", "hydrafacial", 1, "k9"),
    ("a", "hydrafacial", 1, "k9"),        # the same key twice in one batch
    ("a", "hydrafacial", 1, "k10"),       # none left
    ("a", "product-credit", 0, "k11"),    # not a quantity
    ("a", "product-credit", 100, "pre"),  # spent before the batch: a replay
]


@pytest.fixture
def tier(practice):
    practice.record_adapter, practice.record_config = "webhook", {"outbound_url": "https://record.example/hook"}
    practice.save()
    tier, _, _ = glow_tier(practice)
    toxin = ServiceFactory(practice=practice, name="Neurotoxin", code="toxin")
    TierBenefitFactory(tier=tier, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.EXPIRE_AFTER,
                       expire_after_cycles=2)
    ServiceFactory(practice=practice, name="Peel", code="peel")
    return tier


def twin(tier, label):
    """Two memberships (active with extra credit and a hold; paused) and their history's keys."""
    practice = tier.practice
    service = {s.code: s for s in practice.services.all()}
    active = active_membership(tier=tier, member=MemberFactory(practice=practice), now=NOW)
    paused = active_membership(tier=tier, member=MemberFactory(practice=practice), now=NOW)
    services.grant_opening_balance(membership=active, service=service["toxin"], quantity=5, actor=ACTOR,
                                   idempotency_key=f"{label}:open-toxin", now=NOW - timedelta(days=1))
    services.grant_opening_balance(membership=active, service=service["hydrafacial"], quantity=2, actor=ACTOR,
                                   idempotency_key=f"{label}:open", now=NOW)
    manager = services.Actor.staff(User.objects.filter(username="manager").first()
                                   or staff_user(MANAGER, practice, username="manager"))
    services.adjust_balance(membership=active, service=service["peel"], quantity=1, actor=manager,
                            reason="Goodwill", idempotency_key=f"{label}:goodwill", now=NOW)
    services.reserve_entitlement(membership=active, service=service["toxin"], quantity=1, actor=ACTOR,
                                 idempotency_key=f"{label}:hold", now=NOW)
    services.redeem_entitlement(membership=active, service=service["product-credit"], quantity=100, actor=ACTOR,
                                idempotency_key=f"{label}:pre", now=NOW)
    services.pause_membership(membership=paused, until=NOW.date() + timedelta(days=30), actor=ACTOR,
                              idempotency_key=f"{label}:pause", now=NOW)
    return {"a": active.pk, "p": paused.pk}, service


def loaded(pk):
    return Membership.objects.select_related("member__practice", "tier").get(pk=pk)


def one_by_one(tier):
    ids, service = twin(tier, "one")
    outcomes = []
    for who, code, quantity, key in HISTORY:
        try:
            entry = services.redeem_entitlement(membership=loaded(ids[who]), service=service[code], quantity=quantity,
                                                actor=ACTOR, idempotency_key=f"one:{key}", now=NOW,
                                                reason="Treatment reported by the record")
            outcomes.append(("spent", entry.idempotency_key.split(":", 1)[1]))
        except LedgerError as exc:
            outcomes.append((type(exc).__name__, exc.message))
    return ids, outcomes


def batched(tier):
    ids, service = twin(tier, "many")
    with transaction.atomic():
        memberships = redeem_batch.locked_memberships(sorted(ids.values()))
        results = redeem_batch.redeem_many(redemptions=[
            redeem_batch.Redemption(membership=memberships[ids[who]], service=service[code], quantity=quantity,
                                    idempotency_key=f"many:{key}", reason="Treatment reported by the record")
            for who, code, quantity, key in HISTORY], actor=ACTOR, now=NOW)
    outcomes = [("spent", r.entry.idempotency_key.split(":", 1)[1]) if r.entry is not None
                else (type(r.error).__name__, r.error.message) for r in results]
    return ids, outcomes


def _key(key: str) -> str:
    """A key without its twin's label ("one:k1" -> "k1") or its ids ("refill:12:inv:12:3" -> "refill:#:inv:#:#")."""
    label, _, rest = key.partition(":")
    return rest if label in ("one", "many") else re.sub(r"\d+", "#", key)


def snapshot(membership_id):
    """What a membership's rows say, without its own ids and keys' prefix."""
    lots = {pk: i for i, pk in enumerate(CreditLot.objects.filter(membership_id=membership_id).order_by("pk")
                                         .values_list("pk", flat=True))}
    entries = list(LedgerEntry.objects.filter(membership_id=membership_id).select_related("service").order_by("pk"))
    key = {e.pk: _key(e.idempotency_key) for e in entries}
    return {
        "entries": [(key[e.pk], e.service.code, e.kind, e.source, e.quantity, e.balance_after,
                     lots.get(e.lot_id), e.reason, e.actor_type, e.actor_label, e.created_at) for e in entries],
        "movements": sorted((key[m.entry_id], lots[m.lot_id], m.quantity)
                            for m in LotMovement.objects.filter(entry__membership_id=membership_id)),
        "lots": [(lot.service.code, lot.source, lot.cycle_number, lot.granted, lot.remaining, lot.expires_at_cycle)
                 for lot in CreditLot.objects.filter(membership_id=membership_id).select_related("service")
                 .order_by("pk")],
        "balances": sorted((b.service.code, b.balance, b.reserved) for b in
                           EntitlementBalance.objects.filter(membership_id=membership_id).select_related("service")),
        "redeemed": [(e.summary, {**e.payload, "entry_id": key[e.payload["entry_id"]]}, e.actor_type, e.created_at,
                      sorted(Delivery.objects.filter(event=e).values_list("destination", flat=True)))
                     for e in Event.objects.filter(membership_id=membership_id, kind=EventKind.REDEEMED)
                     .order_by("pk")],
    }


def test_a_batch_writes_what_one_by_one_writes_and_refuses_alike(tier):
    one_ids, one_outcomes = one_by_one(tier)
    many_ids, many_outcomes = batched(tier)

    assert many_outcomes == one_outcomes
    assert [o[0] for o in one_outcomes] == [
        "spent", "spent", "MembershipNotRedeemable", "InsufficientBalance", "spent", "InsufficientBalance", "spent",
        "ServiceNotIncluded", "spent", "spent", "spent", "InsufficientBalance", "InvalidQuantity", "spent"]
    for who in ("a", "p"):
        many, one = snapshot(many_ids[who]), snapshot(one_ids[who])
        for part in one:
            assert many[part] == one[part], part
    spent = snapshot(many_ids["a"])
    assert spent["balances"] == [("hydrafacial", 0, 0), ("peel", 0, 0), ("product-credit", 3400, 0),
                                 ("toxin", 6, 1)]
    assert len(spent["movements"]) == 2                  # k1 drew two lots
    assert all(destinations == ["record"] for *_, destinations in spent["redeemed"])


def test_a_batch_that_spends_nothing_writes_nothing(tier):
    ids, service = twin(tier, "none")
    before = (LedgerEntry.objects.count(), Event.objects.count(), Delivery.objects.count())
    with transaction.atomic():
        memberships = redeem_batch.locked_memberships([ids["p"]])
        results = redeem_batch.redeem_many(redemptions=[redeem_batch.Redemption(
            membership=memberships[ids["p"]], service=service["hydrafacial"], quantity=1,
            idempotency_key="none:x", reason="r")], actor=ACTOR, now=NOW)
    assert results[0].entry is None and "paused" in results[0].error.message
    assert (LedgerEntry.objects.count(), Event.objects.count(), Delivery.objects.count()) == before
