"""Many redemptions at once: the record's treatments of an inbox batch.

`redeem_entitlement` is the rule book for spending: `check_redeemable` says who may spend on what,
the balance must have the units available (`balance - reserved`), the lots are drawn first to expire
first, then oldest (`consume_lots`), and the entry, the lots and the `redeemed` timeline event are
written together. `redeem_many` applies the same rules to a list of redemptions whose memberships
the caller holds locked, in the order given — each one sees the balance the ones before it left —
and writes the result set-based: one statement per table for the whole list (PostgreSQL; SQLite
writes the same rows with the ORM's bulk statements). A key used before (or earlier in the list) is a
replay: it returns the first entry and spends nothing. A redemption the rules refuse gets its
`LedgerError` and changes nothing. A parity test (tests/memberships/test_redeem_batch.py) holds the
two paths to the same rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import F

from memberships.errors import IdempotencyKeyReused, LedgerError
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    LotMovement,
    Membership,
    Practice,
    Service,
    TierBenefit,
)

from . import sql
from .common import Actor, new_entry, record_events, redeemed_summary, require_positive
from .redemption import check_redeemable, not_enough, redeemed_payload


@dataclass(frozen=True)
class Redemption:
    membership: Membership     # locked by the caller, with `member.practice` and `tier` loaded
    service: Service
    quantity: int
    idempotency_key: str
    reason: str


@dataclass
class Outcome:
    """What became of one redemption: its entry (`replayed`: written before, nothing spent now), or
    the `LedgerError` that refused it."""

    entry: LedgerEntry | None = None
    replayed: bool = False
    error: LedgerError | None = None


def locked_memberships(ids: list[int], *, practices: dict[int, Practice] | None = None) -> dict[int, Membership]:
    """The memberships, locked in ascending id order (a caller may hold them already), with their
    member, practice and tier — what `redeem_many` needs of them. A batch's memberships share a few
    practices: each is read once (or taken from `practices`, by id), not once per membership."""
    rows = (Membership.objects.select_related("member__home_location", "tier")
            .only(*_MEMBERSHIP_FIELDS, "member__id", "member__practice_id", "member__home_location_id",
                  "member__home_location__id", "member__home_location__record_adapter",
                  "member__home_location__automation_stage", "tier__id", "tier__name")
            .filter(pk__in=ids).order_by("pk"))
    if connection.features.has_select_for_update:
        rows = rows.select_for_update(of=("self",))
    found = {m.pk: m for m in rows}
    practices = dict(practices or {})
    practices.update(Practice.objects.in_bulk({m.member.practice_id for m in found.values()} - practices.keys()))
    for m in found.values():
        m.member.practice = practices[m.member.practice_id]
    return found


_MEMBERSHIP_FIELDS = [f.attname for f in Membership._meta.concrete_fields]


def redeem_many(*, redemptions: list[Redemption], actor: Actor, now: datetime) -> list[Outcome]:
    """Spend each redemption in turn, as `redeem_entitlement` would one by one; returns one
    `Outcome` per redemption, in order. Run it inside the caller's transaction (a savepoint): if it
    raises, nothing it did is kept."""
    if not redemptions:
        return []
    batch = _Batch.read(redemptions)
    outcomes = [_plan_one(batch, r, actor=actor, now=now) for r in redemptions]
    _write(batch, now=now)
    return outcomes


@dataclass
class _Batch:
    """The rows a batch reads once (locked) and what it writes, gathered for one statement per table."""

    replays: dict[str, LedgerEntry]
    included: set[tuple[int, int]]                      # (tier, service) pairs of the tiers' benefits
    balances: dict[tuple[int, int], list[int]]          # (membership, service) -> [row id, balance, reserved]
    lots: dict[tuple[int, int], list[CreditLot]]        # open lots in the order they are drawn
    moved: set[tuple[int, int]] = field(default_factory=set)
    drawn: dict[int, int] = field(default_factory=dict)  # lot id -> units taken
    entries: list[tuple[LedgerEntry, list[tuple[CreditLot, int]], Redemption]] = field(default_factory=list)

    @classmethod
    def read(cls, redemptions: list[Redemption]) -> "_Batch":
        keys = {r.idempotency_key for r in redemptions}
        ids = sorted({r.membership.pk for r in redemptions})
        services = {r.service.pk for r in redemptions}
        balances = EntitlementBalance.objects.filter(membership_id__in=ids, service_id__in=services)
        lots = (CreditLot.objects.filter(membership_id__in=ids, service_id__in=services, remaining__gt=0)
                .order_by("membership_id", "service_id", F("expires_at_cycle").asc(nulls_last=True), "created_at",
                          "id"))
        if connection.features.has_select_for_update:
            balances, lots = balances.select_for_update(), lots.select_for_update()
        batch = cls(
            replays={e.idempotency_key: e for e in LedgerEntry.objects.filter(idempotency_key__in=keys)},
            included=set(TierBenefit.objects.filter(tier_id__in={r.membership.tier_id for r in redemptions},
                                                    service_id__in=services).values_list("tier_id", "service_id")),
            balances={(m, s): [pk, b, r] for pk, m, s, b, r in balances.order_by("membership_id", "service_id")
                      .values_list("pk", "membership_id", "service_id", "balance", "reserved")},
            lots={})
        for lot in lots:
            batch.lots.setdefault((lot.membership_id, lot.service_id), []).append(lot)
        return batch


def _plan_one(batch: _Batch, r: Redemption, *, actor: Actor, now: datetime) -> Outcome:
    """One redemption against the batch's running balances and lots: a replay, a refusal, or the
    rows it writes."""
    replay = batch.replays.get(r.idempotency_key)
    if replay is not None:
        if replay.kind != EntryKind.REDEEM:
            return Outcome(error=IdempotencyKeyReused(idempotency_key=r.idempotency_key))
        return Outcome(entry=replay, replayed=True)
    m, service, pair = r.membership, r.service, (r.membership.pk, r.service.pk)
    row = batch.balances.get(pair)
    try:
        require_positive(r.quantity)
        m.service_included = (m.tier_id, service.pk) in batch.included
        check_redeemable(membership=m, service=service, now=now, balance=row[1] if row else 0)
        if row is None or row[1] - row[2] < r.quantity:
            raise not_enough(membership=m, service=service, quantity=r.quantity)
    except LedgerError as exc:
        return Outcome(error=exc)
    row[1] -= r.quantity
    batch.moved.add(pair)
    movements, left = [], r.quantity
    # a free spend: lots past their expiry (units a boundary spared for a hold) last, as `consume_lots`
    for lot in sorted(batch.lots.get(pair, []), key=lambda lot: lot.expires_at_cycle is not None
                      and lot.expires_at_cycle <= m.cycle_number):
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take:
            lot.remaining -= take
            batch.drawn[lot.pk] = batch.drawn.get(lot.pk, 0) + take
            movements.append((lot, take))
            left -= take
    if left:
        raise RuntimeError(f"lots of membership {m.pk} hold less than its balance")
    entry = new_entry(membership=m, service_id=service.pk, kind=EntryKind.REDEEM, quantity=-r.quantity,
                      balance_after=row[1], actor=actor, reason=r.reason, idempotency_key=r.idempotency_key, now=now,
                      lot=movements[0][0])
    batch.entries.append((entry, movements, r))
    batch.replays[r.idempotency_key] = entry          # the same key again in this batch is a replay
    return Outcome(entry=entry)


def _write(batch: _Batch, *, now: datetime) -> None:
    """The balances, lots, entries, lot movements and timeline events of the batch, set-based."""
    if not batch.entries:
        return
    balances = [(batch.balances[pair][0], batch.balances[pair][1]) for pair in sorted(batch.moved)]
    postgres = connection.vendor == "postgresql"
    if postgres:
        sql.update_from_values(EntitlementBalance, balances, set_sql="balance = v.balance",
                               columns=[("balance", "bigint")])
        sql.update_from_values(CreditLot, sorted(batch.drawn.items()), set_sql="remaining = t.remaining - v.taken",
                               columns=[("taken", "bigint")])
        sql.insert_many([entry for entry, _, _ in batch.entries])
    else:
        # SQLite: the transaction holds the database's write lock, so the rows read are the rows there.
        EntitlementBalance.objects.bulk_update([EntitlementBalance(pk=pk, balance=b) for pk, b in balances],
                                               ["balance"])
        CreditLot.objects.bulk_update([lot for lots in batch.lots.values() for lot in lots if lot.pk in batch.drawn],
                                      ["remaining"])
        LedgerEntry.objects.bulk_create([entry for entry, _, _ in batch.entries])
    LotMovement.objects.bulk_create([LotMovement(entry=entry, lot=lot, quantity=-taken)
                                     for entry, movements, _ in batch.entries if len(movements) > 1
                                     for lot, taken in movements])
    events = []
    for entry, _, r in batch.entries:
        member = r.membership.member
        events.append(Event(
            practice=member.practice, member=member, membership=r.membership, kind=EventKind.REDEEMED,
            summary=redeemed_summary(service=r.service, quantity=r.quantity),
            payload=redeemed_payload(entry_id=entry.pk, service_id=r.service.pk, quantity=r.quantity,
                                     balance_after=entry.balance_after),
            actor_type=entry.actor_type, actor_user_id=entry.actor_user_id, created_at=now))
    record_events(events)
