"""Shared pieces of the ledger services: the actor, events, balance moves and entries in SQL (the
idempotency decorators are in `idempotency`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Case, F, IntegerField, Value, When

from memberships.errors import InvalidQuantity
from memberships.models import (
    ActorType,
    AuditLog,
    CreditLot,
    EntitlementBalance,
    Event,
    LedgerEntry,
    LotMovement,
    Member,
    Membership,
    Service,
)

from . import sql


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a staff user, the processor, the record, the system or an import."""

    type: str
    user: AbstractBaseUser | None = None
    label: str = ""
    ip_address: str | None = None         # where a staff member's request came from (the audit row)
    # Where a staff member works now (StaffProfile: the location chosen at sign-in, and its practice):
    # recorded on the entries, holds, enrollments and audit rows they write.
    location_id: int | None = None
    practice_id: int | None = None

    @classmethod
    def staff(cls, user, *, ip_address: str | None = None) -> "Actor":
        """A staff member, at the location their profile names (read from the user's profile, which
        the staff pages have already loaded: no query of its own there)."""
        profile = getattr(user, "staff_profile", None)
        return cls(type=ActorType.STAFF, user=user, label=user.get_username(), ip_address=ip_address,
                   location_id=getattr(profile, "location_id", None), practice_id=getattr(profile, "practice_id", None))

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(type=ActorType.SYSTEM, label=label)

    @classmethod
    def processor(cls, label: str = "processor") -> "Actor":
        return cls(type=ActorType.PROCESSOR, label=label)

    @classmethod
    def record(cls, label: str = "record") -> "Actor":
        return cls(type=ActorType.RECORD, label=label)

    @classmethod
    def importer(cls, label: str = "import") -> "Actor":
        return cls(type=ActorType.IMPORT, label=label)

    @classmethod
    def member(cls, member: Member, *, ip_address: str | None = None) -> "Actor":
        """The member on their own page (a member session): no user, never any staff right."""
        return cls(type=ActorType.MEMBER, label=f"member {member.pk}", ip_address=ip_address)

    @property
    def user_id(self):
        return self.user.pk if self.user is not None else None


def record_event(
    *, membership: Membership | None = None, member: Member | None = None, kind: str, summary: str,
    payload: dict[str, Any] | None = None, actor: Actor, now: datetime,
) -> Event:
    """Write a timeline/outbox event in the caller's transaction. Payload: ids and amounts only."""
    member = member or membership.member
    event = Event(
        practice_id=member.practice_id,
        member=member,
        membership=membership,
        kind=kind,
        summary=summary[:300],
        payload=payload or {},
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        created_at=now,
    )
    if Member._meta.get_field("practice").is_cached(member):
        event.practice = member.practice  # the outbox fan-out reads it: spare it a query
    sql.insert(event)
    announce_events([event])
    return event


# Who hears of every timeline event, in the event's own transaction: the edges register here
# (integrations: the outbox fan-out, one delivery per destination that wants the event). Called by
# `record_event`, `record_events` and the walk-in — never through a model signal.
EVENT_SINKS: list[Callable[[list[Event]], Any]] = []


def announce_events(events: list[Event]) -> None:
    for sink in EVENT_SINKS:
        sink(events)


def register_event_sink(sink: Callable[[list[Event]], Any]) -> None:
    if sink not in EVENT_SINKS:
        EVENT_SINKS.append(sink)


def record_events(events: list[Event]) -> list[Event]:
    """Write many timeline/outbox events in one statement (the caller's transaction) and hand them
    to the sinks in that transaction."""
    if events:
        sql.insert_many(events)
        announce_events(events)
    return events


def write_audit(*, actor: Actor, action: str, obj=None, member: Member | None = None, detail: dict | None = None,
                now: datetime, member_id: int | None = None) -> AuditLog:
    """The audit row of a change, written by the service that makes it (who, what, when, from where;
    ids only). The member by `member`, or by `member_id` when only the id is at hand."""
    return AuditLog.objects.create(
        user=actor.user, action=action, object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "", member_id=member.pk if member is not None else member_id,
        detail=_by_member(actor, detail), ip_address=actor.ip_address, location_id=actor.location_id,
        created_at=now)


def _by_member(actor: Actor, detail: dict | None) -> dict:
    """An audit row the member caused on their own page says so (it has no user)."""
    if actor.type == ActorType.MEMBER:
        return {**(detail or {}), "actor": actor.label}
    return detail or {}


def write_view_audit(*, actor: Actor, action: str, members, now: datetime, obj=None,
                     detail: dict | None = None) -> list[AuditLog]:
    """The audit rows of a page (or an API answer) that showed member data: one per member shown
    (`members`: Member rows or their ids, in page order; repeats counted once; None for a page whose
    rows are not members yet), all in one INSERT (who, when, which member, from where)."""
    seen: set = set()
    rows = []
    for member in members:
        member_id = member.pk if isinstance(member, Member) else member
        if member_id in seen:
            continue
        seen.add(member_id)
        rows.append(AuditLog(
            user=actor.user, action=action, object_type=type(obj).__name__ if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "", member_id=member_id,
            detail=_by_member(actor, detail), ip_address=actor.ip_address, location_id=actor.location_id,
            created_at=now))
    return AuditLog.objects.bulk_create(rows) if rows else []


def audit_staff_change(*, actor: Actor, action: str, obj=None, member: Member | None = None,
                       detail: dict | None = None, now: datetime) -> AuditLog | None:
    """The audit row of a change a person made (a staff actor, or the member on their own page); what
    the processor, the record or the system changes is on the member's timeline, with no person to name."""
    if actor.type not in (ActorType.STAFF, ActorType.MEMBER):
        return None
    return write_audit(actor=actor, action=action, obj=obj, member=member, detail=detail, now=now)


def redeemed_summary(*, service: Service, quantity: int) -> str:
    """The timeline line of a redemption, whichever path wrote it."""
    return f"Redeemed {service.format_quantity(quantity)} {service.name}"[:300]


# The most one redemption may spend, in units or cents ($1,000.00): the API and the record's
# webhooks refuse more (a larger number is a typo, not a treatment).
MAX_QUANTITY = 100_000


def require_positive(quantity: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidQuantity("Quantity must be a whole number of at least 1.", quantity=quantity)
    return quantity


def move_balance(*, membership_id: int, service_id: int, delta: int, reserved_delta: int = 0,
                 require_available: int | None = None, require_reserved: int | None = None) -> int | None:
    """Change a balance in one conditional UPDATE; returns the new balance, or None when the
    condition failed (nothing changed). The row lock it takes serializes concurrent movers."""
    table = EntitlementBalance._meta.db_table
    conditions = ["membership_id = %s", "service_id = %s"]
    params: list[Any] = [delta, reserved_delta, membership_id, service_id]
    if require_available is not None:
        conditions.append("balance - reserved >= %s")
        params.append(require_available)
    if require_reserved is not None:
        conditions.append("reserved >= %s")
        params.append(require_reserved)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET balance = balance + %s, reserved = reserved + %s "
            f"WHERE {' AND '.join(conditions)} RETURNING balance",
            params,
        )
        row = cursor.fetchone()
    return row[0] if row else None


def ensure_balance_row(*, membership: Membership, service: Service) -> None:
    EntitlementBalance.objects.get_or_create(membership=membership, service=service)


def consume_lots(*, membership_id: int, service_id: int, quantity: int,
                 cycle: int | None = None) -> list[tuple[CreditLot, int]]:
    """Take `quantity` from the open lots, first to expire first, then oldest (the caller already
    moved the balance under its row lock, so the lots hold at least that much): a member never loses
    this cycle's use-it-or-lose-it credit while older credit that never expires sits unused. `cycle`
    (a spend of free units: the membership's current cycle): a lot already past its expiry holds only
    units a boundary spared for a hold, and is drawn last (`overdue_last`). The common case — one lot
    covers it all — is one conditional UPDATE; otherwise the lots are locked and drawn in order."""
    table = CreditLot._meta.db_table
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    overdue = "(expires_at_cycle IS NOT NULL AND expires_at_cycle <= %s), " if cycle is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET remaining = remaining - %s WHERE id = (SELECT id FROM {table} "
            f"WHERE membership_id = %s AND service_id = %s AND remaining > 0 "
            f"ORDER BY {overdue}expires_at_cycle ASC NULLS LAST, created_at, id LIMIT 1{lock}) "
            f"AND remaining >= %s RETURNING id",
            [quantity, membership_id, service_id, *([cycle] if cycle is not None else []), quantity],
        )
        row = cursor.fetchone()
    if row is not None:
        return [(CreditLot(pk=row[0], membership_id=membership_id, service_id=service_id), quantity)]
    taken: list[tuple[CreditLot, int]] = []
    left = quantity
    lots = (
        CreditLot.objects.select_for_update()
        .filter(membership_id=membership_id, service_id=service_id, remaining__gt=0)
        .order_by(*overdue_last(cycle), F("expires_at_cycle").asc(nulls_last=True), "created_at", "id")
    )
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        CreditLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining - take)
        lot.remaining -= take
        taken.append((lot, take))
        left -= take
    if left:
        raise RuntimeError(f"lots of membership {membership_id} hold less than its balance")
    return taken


def overdue_last(cycle: int | None) -> list:
    """The first ordering term of lots drawn for a free spend: those past their expiry at `cycle` last."""
    if cycle is None:
        return []
    return [Case(When(expires_at_cycle__lte=cycle, then=Value(1)), default=Value(0), output_field=IntegerField())]


def entry_movements(entry: LedgerEntry) -> list[tuple[int, int]]:
    """(lot id, signed quantity) pairs an entry moved. A single-lot entry keeps its lot on `lot`
    (no LotMovement row); a multi-lot one has a LotMovement per lot."""
    rows = list(LotMovement.objects.filter(entry=entry).values_list("lot_id", "quantity"))
    if rows:
        return rows
    return [(entry.lot_id, entry.quantity)] if entry.lot_id else []


def new_entry(*, membership: Membership, service_id: int, kind: str, quantity: int, balance_after: int,
              actor: Actor, reason: str, idempotency_key: str, now: datetime, source: str = "",
              lot: CreditLot | None = None, cycle_key: str = "", reverses: LedgerEntry | None = None,
              frozen_quantity: int = 0, dispute: bool = False) -> LedgerEntry:
    """A ledger entry, not yet written (`write_entry` writes one; bulk renewals write many at once)."""
    return LedgerEntry(
        membership=membership, service_id=service_id, kind=kind, source=source, quantity=quantity,
        frozen_quantity=frozen_quantity, balance_after=balance_after, lot=lot, reverses=reverses,
        cycle_key=cycle_key, actor_type=actor.type, actor_user_id=actor.user_id, actor_label=actor.label[:100],
        reason=reason[:300], dispute=dispute, location_id=actor.location_id, idempotency_key=idempotency_key,
        created_at=now)


def write_entry(*, membership: Membership, service_id: int, kind: str, quantity: int, balance_after: int,
                actor: Actor, reason: str, idempotency_key: str, now: datetime, source: str = "",
                movements: list[tuple[CreditLot, int]] | None = None, cycle_key: str = "",
                reverses: LedgerEntry | None = None, frozen_quantity: int = 0, dispute: bool = False,
                movement_sign: int = -1) -> LedgerEntry:
    movements = movements or []
    entry = sql.insert(new_entry(
        membership=membership, service_id=service_id, kind=kind, quantity=quantity, balance_after=balance_after,
        actor=actor, reason=reason, idempotency_key=idempotency_key, now=now, source=source,
        lot=movements[0][0] if movements else None, cycle_key=cycle_key, reverses=reverses,
        frozen_quantity=frozen_quantity, dispute=dispute))
    if len(movements) > 1:
        LotMovement.objects.bulk_create(
            [LotMovement(entry=entry, lot=lot, quantity=movement_sign * q) for lot, q in movements]
        )
    return entry
