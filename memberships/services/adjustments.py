"""Corrections: manager adjustments, reversing entries, opening balances, frozen-credit expiry."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from memberships.failures import log_failure
from memberships.errors import (
    AlreadyReversed,
    InsufficientBalance,
    InvalidQuantity,
    NotAllowed,
    NotReversible,
    ReasonRequired,
)
from memberships.models import (
    ActorType,
    CreditLot,
    EntitlementBalance,
    EntryKind,
    EventKind,
    LedgerEntry,
    LotSource,
    Membership,
    MembershipStatus,
    Service,
)

from .common import (
    Actor,
    audit_staff_change,
    consume_lots,
    entry_movements,
    move_balance,
    record_event,
    write_entry,
)
from .idempotency import idempotent_entry
from .refill import expire_returned_units

logger = logging.getLogger(__name__)

ADJUST_PERMISSION = "memberships.adjust_balance"
REDEEM_PERMISSION = "memberships.redeem_entitlement"


def _grant_lot(*, membership: Membership, service: Service, quantity: int, source: str, now: datetime) -> CreditLot:
    EntitlementBalance.objects.get_or_create(membership=membership, service=service)
    return CreditLot.objects.create(membership=membership, service=service, source=source,
                                    cycle_number=membership.cycle_number, granted=quantity, remaining=quantity,
                                    expires_at_cycle=None, created_at=now)


def check_staff_may_correct(*, actor: Actor, membership: Membership, permission: str) -> None:
    """A staff correction needs the permission and must stay inside the staff member's practice."""
    if actor.type != ActorType.STAFF:
        return
    user = actor.user
    if user is None or not user.has_perm(permission):
        raise NotAllowed("You are not allowed to make this correction.")
    if user.is_superuser:
        return
    profile = getattr(user, "staff_profile", None)
    if profile is None or profile.practice_id != membership.member.practice_id:
        raise NotAllowed("That member belongs to another practice.")


def _check_adjustment(*, membership: Membership, service: Service, quantity: int, actor: Actor, reason: str,
                      **_) -> None:
    if actor.type != ActorType.STAFF or actor.user is None or not actor.user.has_perm(ADJUST_PERMISSION):
        raise NotAllowed("Only a manager may adjust a balance.")
    check_staff_may_correct(actor=actor, membership=membership, permission=ADJUST_PERMISSION)
    if not (reason or "").strip():
        raise ReasonRequired("Say why the balance is being adjusted.")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity == 0:
        raise InvalidQuantity("The adjustment must be a non-zero whole number.")
    if service.practice_id != membership.member.practice_id:
        raise InvalidQuantity("That service belongs to another practice.")


@idempotent_entry(EntryKind.ADJUST, check=_check_adjustment)
def adjust_balance(*, membership: Membership, service: Service, quantity: int, actor: Actor, reason: str,
                   idempotency_key: str, now: datetime, source: str = LotSource.ADJUST,
                   audit_action: str = "adjust") -> LedgerEntry:
    """A manager's correction, up or down, with a reason. Never below zero. The audit row is written
    here (`audit_action` names the page it came from); a replay writes nothing."""
    cycle = Membership.objects.select_for_update(of=("self",)).values_list("cycle_number", flat=True).get(
        pk=membership.pk)
    if quantity > 0:
        lot = _grant_lot(membership=membership, service=service, quantity=quantity, source=source, now=now)
        new_balance = move_balance(membership_id=membership.pk, service_id=service.pk, delta=quantity)
        movements, sign = [(lot, quantity)], 1
    else:
        EntitlementBalance.objects.get_or_create(membership=membership, service=service)
        new_balance = move_balance(membership_id=membership.pk, service_id=service.pk, delta=quantity,
                                   require_available=-quantity)
        if new_balance is None:
            raise InsufficientBalance("The adjustment would take the balance below zero.")
        movements, sign = consume_lots(membership_id=membership.pk, service_id=service.pk, quantity=-quantity,
                                       cycle=cycle), -1
    entry = write_entry(membership=membership, service_id=service.pk, kind=EntryKind.ADJUST, quantity=quantity,
                        balance_after=new_balance, actor=actor, reason=reason.strip(),
                        idempotency_key=idempotency_key, now=now, source=source, movements=movements,
                        movement_sign=sign)
    record_event(membership=membership, kind=EventKind.ADJUSTED,
                 summary=f"Balance adjusted {'+' if quantity > 0 else ''}{service.format_quantity(quantity)} "
                         f"{service.name}: {reason.strip()[:120]}",
                 payload={"entry_id": entry.pk, "service_id": service.pk, "quantity": quantity,
                          "balance_after": new_balance}, actor=actor, now=now)
    audit_staff_change(actor=actor, action=audit_action, obj=entry, member=membership.member, now=now,
                       detail={"service_id": service.pk, "quantity": quantity})
    return entry


def _check_opening(*, quantity: int, **_) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidQuantity("An opening balance must be a positive whole number.")


@idempotent_entry(EntryKind.OPENING, check=_check_opening)
def grant_opening_balance(*, membership: Membership, service: Service, quantity: int, actor: Actor,
                          idempotency_key: str, now: datetime,
                          reason: str = "Opening balance from import") -> LedgerEntry:
    """An imported balance enters the ledger as its own entry (source `import`), so history stays honest."""
    Membership.objects.select_for_update(of=("self",)).get(pk=membership.pk)
    lot = _grant_lot(membership=membership, service=service, quantity=quantity, source=LotSource.IMPORT, now=now)
    new_balance = move_balance(membership_id=membership.pk, service_id=service.pk, delta=quantity)
    entry = write_entry(membership=membership, service_id=service.pk, kind=EntryKind.OPENING, quantity=quantity,
                        balance_after=new_balance, actor=actor, reason=reason, idempotency_key=idempotency_key,
                        now=now, source=LotSource.IMPORT, movements=[(lot, quantity)], movement_sign=1)
    record_event(membership=membership, kind=EventKind.IMPORTED,
                 summary=f"Opening balance {service.format_quantity(quantity)} {service.name}",
                 payload={"entry_id": entry.pk, "service_id": service.pk, "quantity": quantity},
                 actor=actor, now=now)
    return entry


REVERSIBLE = {EntryKind.REDEEM, EntryKind.GRANT, EntryKind.ADJUST, EntryKind.OPENING, EntryKind.EXPIRE}


def _check_reversal(*, entry: LedgerEntry, actor: Actor, reason: str, dispute: bool, now: datetime, **_) -> None:
    if not (reason or "").strip():
        raise ReasonRequired("Say why the entry is being reversed.")
    if entry.kind not in REVERSIBLE:
        raise NotReversible(f"A {entry.get_kind_display().lower()} entry cannot be reversed.")
    # Staff reverse their practice's redemptions; anything else is a manager's correction.
    check_staff_may_correct(actor=actor, membership=entry.membership,
                            permission=REDEEM_PERMISSION if entry.kind == EntryKind.REDEEM else ADJUST_PERMISSION)
    if actor.type == ActorType.STAFF and not actor.user.has_perm(ADJUST_PERMISSION):
        check_own_same_day_reversal(entry=entry, actor=actor, dispute=dispute, now=now)


def check_own_same_day_reversal(*, entry: LedgerEntry, actor: Actor, dispute: bool, now: datetime) -> None:
    """Who is not a manager may reverse only their own redemption, on the business day it was made
    (the practice's time zone), and never mark it disputed (that puts units back and counts in the
    disputes figure): anything else is a manager's. Raises NotAllowed."""
    if dispute:
        raise NotAllowed("Only a manager may mark a redemption disputed; reverse it without the mark, or ask "
                         "a manager.")
    if entry.actor_type != ActorType.STAFF or entry.actor_user_id != actor.user_id:
        raise NotAllowed("You may reverse only a redemption you made yourself; ask a manager to reverse this one.")
    practice = entry.membership.member.practice
    if practice.local_date(entry.created_at) != practice.local_date(now):
        raise NotAllowed("A redemption can be reversed by whoever made it only on the day it was made (practice "
                         "time); ask a manager to reverse this one.")


@idempotent_entry(EntryKind.REVERSE, check=_check_reversal)
def reverse_entry(*, entry: LedgerEntry, actor: Actor, reason: str, idempotency_key: str, now: datetime,
                  dispute: bool = False, audit_action: str = "reverse") -> LedgerEntry:
    """Undo an entry with its mirror image (never an edit). Units go back to the lots they came from;
    reversing a grant needs the units still unspent. Who may: a manager any entry of their practice;
    other staff only their own redemption, the same business day, not marked disputed
    (`check_own_same_day_reversal`). The audit row is written here (`audit_action`
    names the page it came from); a replay returns the first reversal and writes nothing.
    `reverse_entry.outcome(...)` also says whether it was a replay."""
    membership = Membership.objects.select_for_update(of=("self",)).get(pk=entry.membership_id)
    if LedgerEntry.objects.filter(reverses=entry).exists():
        raise AlreadyReversed("That entry was already reversed.")
    quantity = -entry.quantity
    new_balance = move_balance(membership_id=membership.pk, service_id=entry.service_id, delta=quantity,
                               require_available=-quantity if quantity < 0 else None)
    if new_balance is None:
        raise InsufficientBalance("Those units were already used; the grant cannot be reversed.")
    movements = []
    for lot_id, moved in entry_movements(entry):
        lot = CreditLot.objects.select_for_update().get(pk=lot_id)
        back = -moved
        if lot.remaining + back < 0 or lot.remaining + back > lot.granted:
            raise InsufficientBalance("Those units were already used; the entry cannot be reversed.")
        CreditLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining + back)
        movements.append((lot, back))
    reversal = write_entry(membership=membership, service_id=entry.service_id, kind=EntryKind.REVERSE,
                           quantity=quantity, balance_after=new_balance, actor=actor, reason=reason.strip(),
                           idempotency_key=idempotency_key, now=now, source=entry.source,
                           movements=movements, movement_sign=1, reverses=entry, dispute=dispute)
    if entry.kind == EntryKind.REDEEM:
        # A redemption reversed after the boundary: what lands in a lot already past its cycle
        # expires again (a reversed expiry, a manager's deliberate correction, stays).
        expire_returned_units(membership=membership, service_id=entry.service_id, actor=actor,
                              key=f"reverse:{entry.pk}", now=now)
    record_event(membership=membership, kind=EventKind.REVERSED,
                 summary=f"Reversed a {entry.get_kind_display().lower()} of {abs(entry.quantity)}: "
                         f"{reason.strip()[:120]}",
                 payload={"entry_id": reversal.pk, "reverses_id": entry.pk, "service_id": entry.service_id,
                          "quantity": quantity, "dispute": dispute}, actor=actor, now=now)
    audit_staff_change(actor=actor, action=audit_action, obj=reversal, member=entry.membership.member, now=now,
                       detail={"reverses_id": entry.pk, "dispute": dispute})
    return reversal


def expire_due_frozen_balances(*, now: datetime) -> int:
    """Expire the frozen credit of every cancelled membership whose paid period has ended; each
    membership in its own transaction (one that fails is logged and left for the next run)."""
    total = 0
    due = (Membership.objects.filter(status=MembershipStatus.CANCELLED, paid_through__lte=now, lots__remaining__gt=0)
           .distinct().order_by("id"))
    for membership in due:
        try:  # its own transaction
            total += expire_frozen_balances(membership=membership, actor=Actor.system("paid period ended"), now=now)
        except Exception as exc:
            log_failure(logger, "could not expire the frozen credit of membership %s", membership.pk, exc=exc)
    return total


@transaction.atomic
def expire_frozen_balances(*, membership: Membership, actor: Actor, now: datetime) -> int:
    """After a cancelled membership's paid period ends, frozen credit expires (breakage)."""
    locked = Membership.objects.select_for_update(of=("self",)).get(pk=membership.pk)
    if locked.status != MembershipStatus.CANCELLED or (locked.paid_through and locked.paid_through > now):
        return 0
    total = 0
    # Idempotent by state: under the membership lock, only lots that still hold credit expire (a
    # unit handed back later by a reversal expires on the next run).
    for lot in CreditLot.objects.select_for_update().filter(membership=locked, remaining__gt=0):
        done = LedgerEntry.objects.filter(idempotency_key__startswith=f"frozen-expire:{locked.pk}:{lot.pk}:").count()
        key = f"frozen-expire:{locked.pk}:{lot.pk}:{done + 1}"
        quantity = lot.remaining
        new_balance = move_balance(membership_id=locked.pk, service_id=lot.service_id, delta=-quantity,
                                   require_available=quantity)
        if new_balance is None:
            continue
        CreditLot.objects.filter(pk=lot.pk).update(remaining=0)
        write_entry(membership=locked, service_id=lot.service_id, kind=EntryKind.EXPIRE, quantity=-quantity,
                    balance_after=new_balance, actor=actor, reason="Frozen credit expired after cancellation",
                    idempotency_key=key, now=now, source=lot.source, movements=[(lot, quantity)])
        total += quantity
    if total:
        record_event(membership=locked, kind=EventKind.EXPIRED, summary="Frozen credit expired after cancellation",
                     payload={"total": total}, actor=actor, now=now)
    return total
