"""Renewal day: many memberships' next cycle at once.

`refill_entitlements` is the one rule book for a cycle boundary and its grant. Most renewals are its
plainest case — an active membership without a scheduled tier change, renewed for the period after
its current one (`is_plain_renewal`). For a batch of those, `refill_many` does exactly what
`refill_entitlements` would do for each, with the same rules (`_plan_boundary` decides what expires,
`lot_expiry` when the new lot will), but writes set-based: a handful of statements for the whole
batch instead of some twenty per membership. Every other case goes through `refill_entitlements`.
A parity test (tests/memberships/test_renewal_batch.py) holds the two to the same rows.

The caller holds the memberships' row locks (it decided under them). PostgreSQL only: the demo's
SQLite takes the ordinary path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from memberships.models import (
    CreditLot,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LotSource,
    Membership,
    MembershipStatus,
    Operation,
    TierBenefit,
)

from . import sql as rows
from .common import Actor, new_entry, record_events
from .refill import _plan_boundary, lot_expiry, refill_entry_key, refill_key, refilled_text


@dataclass(frozen=True)
class Renewal:
    membership: Membership            # locked by the caller
    cycle_key: str                    # the processor's invoice id
    period_start: datetime
    period_end: datetime | None


def available() -> bool:
    return connection.vendor == "postgresql"


def is_plain_renewal(membership: Membership, *, period_start: datetime | None) -> bool:
    """The case `refill_many` writes: an active membership already in its cycles, no tier change
    scheduled, renewed for a period that starts when (or after) its current one ends."""
    return (membership.status == MembershipStatus.ACTIVE and membership.pending_tier_id is None
            and membership.cycle_number > 0 and period_start is not None
            and membership.current_period_end is not None and period_start >= membership.current_period_end)


def refill_many(*, renewals: list[Renewal], actor: Actor, now: datetime) -> list[Event]:
    """Refill every renewal's next cycle (each must be `is_plain_renewal` and new: its refill key
    unused). Returns the `refilled` timeline events written, one per renewal."""
    if not renewals:
        return []
    by_id = {r.membership.pk: r for r in renewals}
    ids = sorted(by_id)
    benefits = _benefits_of({r.membership.tier_id for r in renewals})
    balances = _locked_balances(ids=ids, renewals=by_id, benefits=benefits)
    lots: dict[int, list[CreditLot]] = {}
    for lot in (CreditLot.objects.select_for_update().filter(membership_id__in=ids, remaining__gt=0,
                                                             source=LotSource.PAID).order_by("created_at", "id")):
        lots.setdefault(lot.membership_id, []).append(lot)
    batch = _Batch()
    for membership_id in ids:
        _plan_one(batch, by_id[membership_id], benefits=benefits.get(by_id[membership_id].membership.tier_id, []),
                  lots=lots.get(membership_id, []), balance=balances[membership_id], actor=actor, now=now)
    _write(batch, renewals=renewals, balances=balances, now=now)
    return record_events(batch.events)


@dataclass
class _Batch:
    """What a batch of renewals writes, gathered before one statement per table."""

    new_lots: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    grants: list = field(default_factory=list)          # (grant entry, its new lot)
    drawn: dict = field(default_factory=dict)           # lot id -> units/cents expired from it
    events: list = field(default_factory=list)


def _benefits_of(tier_ids: set[int]) -> dict[int, list[TierBenefit]]:
    benefits: dict[int, list[TierBenefit]] = {}
    for benefit in (TierBenefit.objects.filter(tier_id__in=tier_ids)
                    .select_related("tier", "service").order_by("tier_id", "id")):
        if benefit.service.practice_id == benefit.tier.practice_id:   # a benefit pointing elsewhere grants nothing
            benefits.setdefault(benefit.tier_id, []).append(benefit)
    return benefits


def _plan_one(batch: _Batch, renewal: Renewal, *, benefits: list[TierBenefit], lots: list[CreditLot],
              balance: dict[int, list[int]], actor: Actor, now: datetime) -> None:
    """One membership's boundary (what `_plan_boundary` expires) and grant, as rows to write;
    `balance` ({service: [row id, balance, reserved]}) moves with them."""
    m, membership_id = renewal.membership, renewal.membership.pk
    cycle = m.cycle_number + 1
    plan = _plan_boundary(lots=[lot for lot in lots if lot.cycle_number < cycle],
                          benefits={b.service_id: b for b in benefits}, cycle=cycle,
                          available={s: row[1] - row[2] for s, row in balance.items()})
    expired = 0
    for lot, quantity, reason, kind in plan:
        batch.drawn[lot.pk] = batch.drawn.get(lot.pk, 0) + quantity
        balance[lot.service_id][1] -= quantity
        expired += quantity
        batch.entries.append(new_entry(
            membership=m, service_id=lot.service_id, kind=EntryKind.EXPIRE, quantity=-quantity,
            balance_after=balance[lot.service_id][1], actor=actor, reason=reason,
            idempotency_key=f"{kind}:{membership_id}:{renewal.cycle_key}:{lot.pk}", now=now, source=lot.source,
            lot=lot))
    granted = []
    for benefit in benefits:
        quantity = benefit.quantity_per_cycle
        lot = CreditLot(membership_id=membership_id, service_id=benefit.service_id, source=LotSource.PAID,
                        cycle_number=cycle, granted=quantity, remaining=quantity,
                        expires_at_cycle=lot_expiry(benefit, cycle), period_start=renewal.period_start, created_at=now)
        balance[benefit.service_id][1] += quantity
        entry = new_entry(membership=m, service_id=benefit.service_id, kind=EntryKind.GRANT, quantity=quantity,
                          balance_after=balance[benefit.service_id][1], actor=actor, reason=f"Cycle {cycle} refill",
                          idempotency_key=refill_entry_key(membership_id, renewal.cycle_key, benefit.service_id),
                          now=now, source=LotSource.PAID, cycle_key=renewal.cycle_key)
        batch.new_lots.append(lot)
        batch.entries.append(entry)
        batch.grants.append((entry, lot))
        granted.append({"service_id": benefit.service_id, "quantity": quantity,
                        "balance_after": balance[benefit.service_id][1]})
    summary, payload = refilled_text(cycle_number=cycle, granted=granted, expired=expired,
                                     cycle_key=renewal.cycle_key, late=False)
    batch.events.append(Event(practice=m.member.practice, member=m.member, membership=m, kind=EventKind.REFILLED,
                              summary=summary, payload=payload, actor_type=actor.type, actor_user_id=actor.user_id,
                              created_at=now))


def _write(batch: _Batch, *, renewals: list[Renewal], balances: dict[int, dict[int, list[int]]],
           now: datetime) -> None:
    """One statement per table for the whole batch; the caller's membership instances follow."""
    rows.insert_many(batch.new_lots)
    for entry, lot in batch.grants:
        entry.lot = lot
    rows.insert_many(batch.entries)
    rows.update_from_values(CreditLot, list(batch.drawn.items()),
                            set_sql="remaining = t.remaining - v.taken", columns=[("taken", "bigint")])
    rows.update_from_values(EntitlementBalance,
                            [(row[0], row[1], now) for balance in balances.values() for row in balance.values()],
                            set_sql="balance = v.balance, updated_at = v.updated_at",
                            columns=[("balance", "bigint"), ("updated_at", "timestamptz")])
    rows.update_from_values(
        Membership,
        [(r.membership.pk, r.membership.cycle_number + 1, now, r.period_start,
          r.period_end or r.membership.current_period_end, now) for r in renewals],
        set_sql="cycle_number = v.cycle_number, last_refill_at = v.last_refill_at, "
                "current_period_start = v.period_start, current_period_end = v.period_end, updated_at = v.updated_at",
        columns=[("cycle_number", "integer"), ("last_refill_at", "timestamptz"), ("period_start", "timestamptz"),
                 ("period_end", "timestamptz"), ("updated_at", "timestamptz")])
    rows.insert_many([
        Operation(idempotency_key=refill_key(r.membership.pk, r.cycle_key), name="refill_entitlements",
                  result_model="Membership", result_id=r.membership.pk, created_at=now) for r in renewals])
    for r in renewals:                      # the caller's instances, as refill_entitlements returns them
        m = r.membership
        m.cycle_number += 1
        m.last_refill_at = now
        m.current_period_start = r.period_start
        m.current_period_end = r.period_end or m.current_period_end


def _locked_balances(*, ids: list[int], renewals: dict[int, Renewal], benefits: dict[int, list[TierBenefit]]
                     ) -> dict[int, dict[int, list[int]]]:
    """{membership: {service: [row id, balance, reserved]}}, locked, with a row for every benefit."""
    def read() -> dict[int, dict[int, list[int]]]:
        found: dict[int, dict[int, list[int]]] = {pk: {} for pk in ids}
        for row_id, membership_id, service_id, balance, reserved in (
                EntitlementBalance.objects.select_for_update().filter(membership_id__in=ids)
                .order_by("membership_id", "service_id")
                .values_list("id", "membership_id", "service_id", "balance", "reserved")):
            found[membership_id][service_id] = [row_id, balance, reserved]
        return found

    found = read()
    missing = [EntitlementBalance(membership_id=pk, service_id=b.service_id)
               for pk in ids for b in benefits.get(renewals[pk].membership.tier_id, [])
               if b.service_id not in found[pk]]
    if missing:
        EntitlementBalance.objects.bulk_create(missing, ignore_conflicts=True)
        found = read()
    return found

