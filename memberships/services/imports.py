"""Bringing an existing membership over from a spreadsheet: it is already paid for, so it becomes
active (or whatever the sheet says) without a processor charge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction

from memberships.errors import IdempotencyKeyReused, IllegalTransition, InvalidQuantity, InvalidTier
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    LotMovement,
    LotSource,
    Member,
    Membership,
    MembershipStatus,
    Operation,
    Service,
    Tier,
    TierBenefit,
)

from .bulk_rows import among, insert_rows
from .common import Actor, record_event
from .idempotency import idempotent

IMPORTABLE_STATUSES = (MembershipStatus.ACTIVE, MembershipStatus.PAUSED, MembershipStatus.PAST_DUE)


def _check_importable(*, status: str, paused_until: date | None, **_) -> None:
    if status not in IMPORTABLE_STATUSES:
        raise IllegalTransition(f"An imported membership can start as active, paused or past due, not {status}.")
    _require_pause_end(status=status, paused_until=paused_until)


@idempotent("activate_imported_membership", check=_check_importable)
def activate_imported_membership(*, membership: Membership, status: str = MembershipStatus.ACTIVE,
                                 current_period_start: datetime | None = None,
                                 current_period_end: datetime | None = None, paused_until: date | None = None,
                                 processor_subscription_id: str = "", actor: Actor, idempotency_key: str,
                                 now: datetime) -> Membership:
    """Move an imported membership from pending to the status the spreadsheet states (active, paused
    until a date, or past due), with its current period and processor subscription id. No charge, no
    refill: the opening balances come in through `grant_opening_balance`. A cancelled one is activated,
    given its balances, then cancelled with `cancel_membership`, so its balance is frozen the usual way."""
    locked = Membership.objects.select_for_update(of=("self",)).select_related("member").get(pk=membership.pk)
    if locked.status != MembershipStatus.PENDING:
        raise IllegalTransition("Only a pending membership can be activated from an import.",
                                status=locked.status)
    locked.status = status
    locked.current_period_start = current_period_start
    locked.current_period_end = current_period_end
    locked.paused_until = paused_until if status == MembershipStatus.PAUSED else None
    if processor_subscription_id:
        locked.processor_subscription_id = processor_subscription_id
    locked.save(update_fields=["status", "current_period_start", "current_period_end", "paused_until",
                               "processor_subscription_id", "updated_at"])
    record_event(membership=locked, kind=EventKind.IMPORTED,
                 summary=f"Imported from the membership spreadsheet as {_status_text(locked)}",
                 payload={"status": status,
                          "current_period_end": current_period_end.isoformat() if current_period_end else None,
                          "paused_until": locked.paused_until.isoformat() if locked.paused_until else None},
                 actor=actor, now=now)
    return locked


def _require_pause_end(*, status: str, paused_until: date | None) -> None:
    """A paused membership resumes on its end date (the hourly job, or the first charge after it):
    without one it would stay paused for ever."""
    if status == MembershipStatus.PAUSED and paused_until is None:
        raise IllegalTransition("An imported paused membership needs the date its pause ends.")


def _status_text(membership: Membership) -> str:
    text = membership.get_status_display().lower()
    return f"{text} until {membership.paused_until:%b %d, %Y}" if membership.paused_until else text


@dataclass(frozen=True)
class MemberRef:
    """A member as the bulk import needs one: its id and practice (no row loaded)."""

    pk: int
    practice_id: int


@dataclass(frozen=True)
class ImportedMembership:
    """One membership as a spreadsheet states it: already paid for up to `current_period_end`."""

    member: Member | MemberRef
    tier: Tier
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    processor_subscription_id: str
    opening: tuple[tuple[Service, int], ...]   # (service, units or cents), each > 0
    key: str                                   # idempotency prefix, e.g. "import:<practice>:<member number>"
    paused_until: date | None = None           # required for a paused one: the day it resumes
    started_at: datetime | None = None         # the sheet's join date ("member since"); None: now
    paid_through: datetime | None = None       # a cancelled one's end of use; None: its period end


@transaction.atomic
def import_memberships(*, items: list[ImportedMembership], actor: Actor, now: datetime) -> dict[int, int]:
    """Bring many existing memberships over at once, in a constant number of queries (one statement
    per table, rows sent without a model instance each: `bulk_rows.insert_rows`). Returns member id →
    membership id.

    For each item this writes what `enroll_member` + `activate_imported_membership` +
    `grant_opening_balance` (+ `cancel_membership` for a cancelled one) would write — the membership
    in its stated status since its join date, a balance row per benefit, an import lot and an
    `opening` ledger entry (source `import`) per opening balance, freeze entries for a cancelled one,
    and one IMPORTED event — and keeps their invariants (balance == sum of entries, lots == balance).
    No charge, no refill. Imported events describe history the processor and the record already hold,
    so they are not handed to the outbox (they are history, not news for the record).

    Idempotent per item on `<key>:membership`: an item already imported is returned as it is."""
    if not items:
        return {}
    for item in items:
        _check_item(item)
    op_keys = {f"{item.key}:membership": item for item in items}
    done_ops = {op.idempotency_key: op for op in Operation.objects.filter(among("idempotency_key", op_keys))}
    result = _replayed(done_ops, op_keys)
    todo = [item for key, item in op_keys.items() if key not in done_ops]
    if not todo:
        return result
    busy = set(Membership.objects.filter(among("member_id", [i.member.pk for i in todo]))
               .exclude(status=MembershipStatus.CANCELLED).values_list("member_id", flat=True))
    if busy:
        raise IllegalTransition("These members already have an open membership.", member_ids=sorted(busy))
    membership_ids = _create_memberships(todo, now=now)
    _write_opening_balances(todo, membership_ids, actor=actor, now=now)
    insert_rows(Event, ("practice", "member", "membership", "kind", "summary", "payload", "actor_type", "actor_user",
                        "created_at"),
                (_imported_event(item, membership_id, actor=actor, now=now)
                 for item, membership_id in zip(todo, membership_ids)))
    for item, membership_id in zip(todo, membership_ids):
        result[item.member.pk] = membership_id
    return result


def _check_item(item: ImportedMembership) -> None:
    if item.status not in IMPORTABLE_STATUSES + (MembershipStatus.CANCELLED,):
        raise IllegalTransition(f"An imported membership cannot start as {item.status}.")
    if item.tier.practice_id != item.member.practice_id:
        raise InvalidTier("Choose a tier of the member's practice.")
    if any(quantity <= 0 for _, quantity in item.opening):
        raise InvalidQuantity("An opening balance must be a positive whole number.")
    _require_pause_end(status=item.status, paused_until=item.paused_until)


def _replayed(done_ops: dict[str, Operation], op_keys: dict[str, ImportedMembership]) -> dict[int, int]:
    """The memberships already imported under these keys: member id → membership id."""
    result: dict[int, int] = {}
    for key, op in done_ops.items():
        if op.name != "import_membership":
            raise IdempotencyKeyReused(idempotency_key=key)
        result[op_keys[key].member.pk] = op.result_id
    return result


def _create_memberships(todo: list[ImportedMembership], *, now: datetime) -> list[int]:
    """The memberships in their stated status, each with the Operation that claims its key (written
    after them, in the same transaction, so it names its result at once)."""
    cancelled = MembershipStatus.CANCELLED

    def row(item: ImportedMembership) -> tuple:
        is_cancelled = item.status == cancelled
        paid_through = (item.paid_through or (item.current_period_end if item.current_period_end
                                              and item.current_period_end > now else now)) if is_cancelled else None
        return (item.member.pk, item.tier.pk, str(item.status), min(item.started_at, now) if item.started_at else now,
                item.current_period_start, item.current_period_end, item.processor_subscription_id,
                item.paused_until if item.status == MembershipStatus.PAUSED else None,
                now if is_cancelled else None, paid_through, "Cancelled before import" if is_cancelled else "")

    ids = insert_rows(Membership, ("member", "tier", "status", "started_at", "current_period_start",
                                   "current_period_end", "processor_subscription_id", "paused_until", "cancelled_at",
                                   "paid_through", "cancel_reason"), (row(item) for item in todo))
    insert_rows(Operation, ("idempotency_key", "name", "result_model", "result_id", "created_at"),
                ((f"{item.key}:membership", "import_membership", "Membership", pk, now) for item, pk in zip(todo, ids)))
    return ids


def _write_opening_balances(todo: list[ImportedMembership], membership_ids: list[int], *, actor: Actor,
                            now: datetime) -> None:
    """A balance row per benefit and opening balance; per opening balance an import lot, an `opening`
    entry drawing on it and, for a cancelled membership, its freeze entry."""
    benefit_services: dict[int, list[int]] = {}
    for benefit in TierBenefit.objects.filter(tier_id__in={i.tier.pk for i in todo}).values("tier_id", "service_id"):
        benefit_services.setdefault(benefit["tier_id"], []).append(benefit["service_id"])
    balances, owners = [], []
    for item, membership_id in zip(todo, membership_ids):
        frozen_at = now if item.status == MembershipStatus.CANCELLED else None
        opening = {service.pk: quantity for service, quantity in item.opening}
        for service_id in dict.fromkeys(benefit_services.get(item.tier.pk, []) + list(opening)):
            balances.append((membership_id, service_id, opening.get(service_id, 0), frozen_at))
        owners.extend((item, membership_id, service, quantity) for service, quantity in item.opening)
    insert_rows(EntitlementBalance, ("membership", "service", "balance", "frozen_at"), balances)
    lots = insert_rows(CreditLot, ("membership", "service", "source", "cycle_number", "granted", "remaining",
                                   "expires_at_cycle", "created_at"),
                       ((m, s.pk, str(LotSource.IMPORT), 0, q, q, None, now) for _, m, s, q in owners))
    label = actor.label[:100]
    entry_fields = ("membership", "service", "kind", "source", "quantity", "frozen_quantity", "balance_after", "lot",
                    "actor_type", "actor_user", "actor_label", "reason", "idempotency_key", "created_at")
    entries = insert_rows(LedgerEntry, entry_fields, (
        (m, s.pk, str(EntryKind.OPENING), str(LotSource.IMPORT), q, 0, q, lot, str(actor.type), actor.user_id, label,
         "Opening balance from import", f"{item.key}:opening:{s.code}"[:200], now)
        for lot, (item, m, s, q) in zip(lots, owners)))
    insert_rows(LotMovement, ("entry", "lot", "quantity"),
                ((entry, lot, q) for entry, lot, (_, _, _, q) in zip(entries, lots, owners)))
    insert_rows(LedgerEntry, entry_fields, (
        (m, s.pk, str(EntryKind.FREEZE), LedgerEntry._meta.get_field("source").get_default(), 0, q, q, None,
         str(actor.type), actor.user_id, label, "Cancelled before import", f"freeze:{m}:{s.pk}", now)
        for item, m, s, q in owners if item.status == MembershipStatus.CANCELLED))


def _imported_event(item: ImportedMembership, membership_id: int, *, actor: Actor, now: datetime) -> tuple:
    opening_text = ", ".join(f"{s.format_quantity(q)} {s.name}" for s, q in item.opening)
    paused_until = item.paused_until if item.status == MembershipStatus.PAUSED else None
    status = MembershipStatus(item.status).label.lower()
    status_text = f"{status} until {paused_until:%b %d, %Y}" if paused_until else status
    summary = (f"Imported from the membership spreadsheet: {item.tier.name}, {status_text}"
               + (f"; opening balance {opening_text}" if opening_text else ""))[:300]
    payload = {"tier_id": item.tier.pk, "status": str(item.status),
               "opening": [{"service_id": s.pk, "quantity": q} for s, q in item.opening],
               "current_period_end": item.current_period_end.isoformat() if item.current_period_end else None,
               "paused_until": paused_until.isoformat() if paused_until else None}
    return (item.member.practice_id, item.member.pk, membership_id, str(EventKind.IMPORTED), summary, payload,
            str(actor.type), actor.user_id, now)
