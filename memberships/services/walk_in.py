"""The common walk-in redemption in one round trip, on PostgreSQL.

Most redemptions are an active member spending from one lot. For those, the database function
`ledger_redeem_walk_in` (migration 0007) does in one call what `redeem_entitlement` does in six
statements: lock the membership, move the balance, draw the lot, write the entry and the timeline
event. It takes only that case: for any other (another status, the balance short, several lots, a
replayed key) it refuses with a code and the caller runs the ordinary locked path, which decides
and words the outcome. So the rules stay in one place, in Python; the function is mechanics.

The outbox hears of every event in the event's own transaction: when something registered in
`EVENT_AUDIENCE` wants this event (a record to update), the call and the fan-out share a
transaction; otherwise the call commits on its own."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from typing import Callable

from django.db import DatabaseError, IntegrityError, connection, transaction

from memberships.models import EntryKind, Event, EventKind, LedgerEntry, Member, Membership, Service

from . import sql
from .common import announce_events, redeemed_summary
from .idempotency import replay_entry

# Predicates the edges register (integrations: "does an outbox destination want this event?").
EVENT_AUDIENCE: list[Callable[[Event], bool]] = []
_REFUSALS = {"LDG01", "LDG02", "LDG03"}


def register_event_audience(predicate: Callable[[Event], bool]) -> None:
    EVENT_AUDIENCE.append(predicate)


def redeem_in_one_call(*, membership: Membership, service: Service, quantity: int, actor, idempotency_key: str,
                       now: datetime, reason: str) -> LedgerEntry | None:
    """The entry, or None: take the locked path."""
    if connection.vendor != "postgresql" or not Membership._meta.get_field("member").is_cached(membership):
        return None
    member = membership.member
    if not Member._meta.get_field("practice").is_cached(member) or member.practice_id != service.practice_id:
        return None
    summary = redeemed_summary(service=service, quantity=quantity)
    event = Event(practice=member.practice, member=member, membership=membership, kind=EventKind.REDEEMED,
                  summary=summary, payload={}, actor_type=actor.type, actor_user_id=actor.user_id, created_at=now)
    shared = connection.in_atomic_block or any(wants(event) for wants in EVENT_AUDIENCE)
    try:
        with transaction.atomic() if shared else nullcontext():
            entry_id, balance, lot_id, event_id = _call(membership, service, quantity, actor, idempotency_key, now,
                                                        reason, summary)
            event.payload = {"entry_id": entry_id, "service_id": service.pk, "quantity": quantity,
                             "balance_after": balance}
            sql.written(event, pk=event_id)
            announce_events([event])
    except IntegrityError:
        return replay_entry(idempotency_key, kind=EntryKind.REDEEM)   # a replay: the first entry (or None)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) in _REFUSALS:
            return None
        raise
    entry = LedgerEntry(
        membership=membership, service=service, kind=EntryKind.REDEEM, source="", quantity=-quantity,
        frozen_quantity=0, balance_after=balance, lot_id=lot_id, reverses=None, cycle_key="", actor_type=actor.type,
        actor_user_id=actor.user_id, actor_label=actor.label[:100], reason=reason[:300], dispute=False,
        location_id=actor.location_id, idempotency_key=idempotency_key, created_at=now)
    return sql.written(entry, pk=entry_id)


def _call(membership, service, quantity, actor, key, now, reason, summary):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_redeem_walk_in(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       [membership.pk, membership.member_id, membership.member.practice_id, service.pk, quantity, key,
                        actor.type, actor.user_id, actor.label[:100], reason[:300], summary, now, actor.location_id])
        return cursor.fetchone()
