"""Spending entitlements: walk-in redemption, and the reserve → commit | release hold."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from django.db import transaction

from memberships.errors import (
    IllegalTransition,
    InsufficientBalance,
    MembershipNotRedeemable,
    NotRedeemableHere,
    StaleChart,
    ServiceNotIncluded,
)
from memberships.models import (
    ActorType,
    EntitlementBalance,
    EntryKind,
    EventKind,
    LedgerEntry,
    Location,
    Membership,
    MembershipStatus,
    Practice,
    RedeemableAt,
    RedemptionWhenPastDue,
    Reservation,
    ReservationStatus,
    Service,
    TierBenefit,
)

from . import sql
from .common import (
    Actor,
    audit_staff_change,
    consume_lots,
    move_balance,
    record_event,
    redeemed_summary,
    require_positive,
    write_audit,
    write_entry,
)
from .idempotency import idempotent_entry, replay_entry
from .refill import expire_returned_units
from .walk_in import redeem_in_one_call


def _lock_membership(membership: Membership, service: Service | None = None) -> Membership:
    """Lock the membership row (a cancellation or pause cannot slip in between the check and the
    spend). With a service, also learn in the same query whether the tier includes it."""
    return sql.lock_membership(membership_id=membership.pk, service_id=service.pk if service else None)


def check_redeemable(*, membership: Membership, service: Service, now: datetime, balance: int | None = None) -> None:
    """Raise when this membership may not spend on this service now (status, practice policy,
    tier contents). `membership` must carry `member.practice`; `balance`, when the caller holds it
    (a batch), spares reading it for a service the tier does not include."""
    if service.practice_id != membership.member.practice_id:
        raise ServiceNotIncluded("That service belongs to another practice.")
    status = membership.status
    practice = membership.member.practice
    if status == MembershipStatus.PAUSED:
        raise MembershipNotRedeemable("The membership is paused; resume it before redeeming.")
    if status in (MembershipStatus.PENDING, MembershipStatus.LAPSED):
        raise MembershipNotRedeemable(f"The membership is {membership.get_status_display().lower()}.")
    if status == MembershipStatus.PAST_DUE and practice.redemption_when_past_due == RedemptionWhenPastDue.BLOCK:
        raise MembershipNotRedeemable("The card was declined; the practice blocks redemptions until it is updated.")
    if status == MembershipStatus.CANCELLED:
        usable = (
            practice.frozen_credit_usable_until_period_end
            and membership.paid_through is not None
            and now < membership.paid_through
        )
        if not usable:
            raise MembershipNotRedeemable("The membership is cancelled; its balance is frozen.")
    included = getattr(membership, "service_included", None)
    if included is None:
        included = TierBenefit.objects.filter(tier_id=membership.tier_id, service_id=service.pk).exists()
    if included:
        return
    if balance is None:
        balance = EntitlementBalance.objects.filter(membership_id=membership.pk, service_id=service.pk,
                                                    balance__gt=0).values_list("balance", flat=True).first() or 0
    if balance <= 0:
        raise ServiceNotIncluded(f"{membership.tier.name} does not include {service.name}.")


def _rule_applies(membership: Membership, actor: Actor) -> bool:
    """Whether the tier's "only at the home location" rule has a staff member to judge (the record's
    and the system's spending is not at a desk). Without the tier at hand: assume it may."""
    if actor.type != ActorType.STAFF:
        return False
    if not Membership._meta.get_field("tier").is_cached(membership):
        return True
    return membership.tier.redeemable_at == RedeemableAt.HOME


def check_location(*, membership: Membership, actor: Actor) -> None:
    """Raise NotRedeemableHere when the tier's benefits are redeemable only at the member's home
    location and the staff member works elsewhere: at another location, or at another practice of
    the group with no location chosen. Where the location is not known (not chosen, or the member has
    no home location), staff of the member's own practice may redeem, as before locations existed.
    `membership` must carry `member` and `tier` (the lock's). A refusal names where they may."""
    if not _rule_applies(membership, actor) or membership.tier.redeemable_at != RedeemableAt.HOME:
        return
    member = membership.member
    here, home = actor.location_id, member.home_location_id
    if here is not None and home is not None:
        if here == home:
            return
    elif actor.practice_id is None or actor.practice_id == member.practice_id:
        return
    if home is not None:
        where = Location.objects.filter(pk=home).values_list("name", flat=True).first()
    else:
        where = Practice.objects.filter(pk=member.practice_id).values_list("name", flat=True).first()
    raise NotRedeemableHere(f"{membership.tier.name}'s benefits are redeemable only at {where}.",
                            membership_id=membership.pk, location_id=here)


def _spend(*, membership: Membership, service: Service, quantity: int, from_reserved: bool,
           actor: Actor, reason: str, idempotency_key: str, now: datetime, held: int | None = None) -> LedgerEntry:
    """Spend `quantity`: from the free balance, or (`from_reserved`) from a hold of `held` units
    (default: as many), which ends — what it does not cover is drawn from the free balance."""
    held = quantity if held is None else held
    new_balance = move_balance(
        membership_id=membership.pk,
        service_id=service.pk,
        delta=-quantity,
        reserved_delta=-held if from_reserved else 0,
        require_available=(quantity - held if quantity > held else None) if from_reserved else quantity,
        require_reserved=held if from_reserved else None,
    )
    if new_balance is None:
        raise not_enough(membership=membership, service=service, quantity=quantity)
    movements = consume_lots(membership_id=membership.pk, service_id=service.pk, quantity=quantity,
                             cycle=None if from_reserved else membership.cycle_number)
    entry = write_entry(
        membership=membership, service_id=service.pk, kind=EntryKind.REDEEM, quantity=-quantity,
        balance_after=new_balance, actor=actor, reason=reason, idempotency_key=idempotency_key,
        now=now, movements=movements,
    )
    record_event(
        membership=membership, kind=EventKind.REDEEMED,
        summary=redeemed_summary(service=service, quantity=quantity),
        payload=redeemed_payload(entry_id=entry.pk, service_id=service.pk, quantity=quantity,
                                 balance_after=new_balance),
        actor=actor, now=now,
    )
    return entry


def not_enough(*, membership: Membership, service: Service, quantity: int) -> InsufficientBalance:
    """The refusal of a spend the available balance does not cover."""
    return InsufficientBalance(f"Not enough {service.name} left: {quantity} asked.",
                               membership_id=membership.pk, service_id=service.pk)


def redeemed_payload(*, entry_id: int, service_id: int, quantity: int, balance_after: int) -> dict:
    """The `redeemed` timeline event's payload, whichever path wrote it (ids and amounts only)."""
    return {"entry_id": entry_id, "service_id": service_id, "quantity": quantity, "balance_after": balance_after}


def redeem_entitlement(*, membership: Membership, service: Service, quantity: int = 1, actor: Actor,
                       idempotency_key: str, now: datetime, reason: str = "") -> LedgerEntry:
    """Spend `quantity` now (a walk-in: reserve and commit at once). Replaying the key returns the
    first entry and spends nothing; N concurrent redemptions of the last unit let exactly one through."""
    require_positive(quantity)
    reason = reason or "Redeemed at the front desk"
    # The common case (an active member, one lot, no location rule to judge) in one database call;
    # anything else, under the lock.
    if not _rule_applies(membership, actor):
        entry = redeem_in_one_call(membership=membership, service=service, quantity=quantity, actor=actor,
                                   idempotency_key=idempotency_key, now=now, reason=reason)
        if entry is not None:
            return entry
    return _redeem_under_lock(membership=membership, service=service, quantity=quantity, actor=actor,
                              reason=reason, idempotency_key=idempotency_key, now=now)


# No replay lookup first: a replay runs into the key's unique index (or finds the balance spent)
# and then returns the first entry, so the common case saves a query.
@idempotent_entry(EntryKind.REDEEM, look_first=False)
def _redeem_under_lock(*, membership: Membership, service: Service, quantity: int, actor: Actor, reason: str,
                       idempotency_key: str, now: datetime) -> LedgerEntry:
    locked = _lock_membership(membership, service)
    check_redeemable(membership=locked, service=service, now=now)
    check_location(membership=locked, actor=actor)
    return _spend(membership=locked, service=service, quantity=quantity, from_reserved=False,
                  actor=actor, reason=reason, idempotency_key=idempotency_key, now=now)


@dataclass(frozen=True)
class Redeemed:
    """What a redemption at the desk did: the entry, and whether it was a replay (nothing spent)."""

    entry: LedgerEntry
    replayed: bool


def redeem_at_desk(*, membership: Membership, service: Service, quantity: int, actor: Actor,
                   idempotency_key: str, chart_version: int, now: datetime) -> Redeemed:
    """The front desk's redemption, its one door. Under the membership's lock, in one transaction: a
    replay of the form (a double click, a resubmission, a browser retry) returns the first entry and
    spends nothing; a chart opened before another desk or the record used this balance
    (`chart_version`: the newest entry the chart showed) is refused with StaleChart; otherwise the
    units are spent (`redeem_entitlement`) and the audit row written."""
    with transaction.atomic():
        locked = _lock_membership(membership, service)
        replay = replay_entry(idempotency_key, kind=EntryKind.REDEEM)
        if replay is not None:
            return Redeemed(entry=replay, replayed=True)
        check_location(membership=locked, actor=actor)
        if LedgerEntry.objects.filter(membership_id=locked.pk, service_id=service.pk, id__gt=chart_version).exists():
            raise StaleChart(f"{service.name} changed since this chart was opened (another desk or the record may "
                             "have just used it). Check the balance and the timeline, then redeem again if it is "
                             "still needed.")
        entry = redeem_entitlement(membership=locked, service=service, quantity=quantity, actor=actor,
                                   idempotency_key=idempotency_key, now=now)
        write_audit(actor=actor, action="redeem", obj=entry, member=locked.member, now=now,
                    detail={"service_id": service.pk, "quantity": quantity, "entry_id": entry.pk})
        return Redeemed(entry=entry, replayed=False)


def reserve_entitlement(*, membership: Membership, service: Service, quantity: int = 1, actor: Actor,
                        idempotency_key: str, now: datetime, external_ref: str = "",
                        audit_action: str = "hold") -> Reservation:
    """Hold units for a booked appointment: they stop being available to anyone else. A person's
    hold (staff, API) writes its audit row `audit_action`; a replay writes nothing."""
    require_positive(quantity)
    existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        locked = _lock_membership(membership, service)
        existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        check_redeemable(membership=locked, service=service, now=now)
        check_location(membership=locked, actor=actor)
        if move_balance(membership_id=locked.pk, service_id=service.pk, delta=0, reserved_delta=quantity,
                        require_available=quantity) is None:
            raise InsufficientBalance(f"Not enough {service.name} available to hold {quantity}.",
                                      membership_id=locked.pk, service_id=service.pk)
        reservation = Reservation.objects.create(
            membership=locked, service=service, quantity=quantity, idempotency_key=idempotency_key,
            external_ref=external_ref, location_id=actor.location_id, created_at=now,
        )
        record_event(
            membership=locked, kind=EventKind.RESERVED,
            summary=f"Held {service.format_quantity(quantity)} {service.name} for an appointment",
            payload={"reservation_id": reservation.pk, "service_id": service.pk, "quantity": quantity},
            actor=actor, now=now,
        )
        audit_staff_change(actor=actor, action=audit_action, obj=reservation, member=locked.member, now=now,
                           detail={"service_id": service.pk, "quantity": quantity})
        return reservation


def _lock_reservation(reservation: Reservation) -> Reservation:
    return Reservation.objects.select_for_update().select_related("service").get(pk=reservation.pk)


def commit_reservation(*, reservation: Reservation, actor: Actor, now: datetime,
                       idempotency_key: str | None = None, audit_action: str = "commit_hold",
                       quantity: int | None = None) -> LedgerEntry:
    """Spend a held reservation (the treatment happened). Committing twice spends once; the person's
    commit writes its audit row once. `quantity`: what was done, when the record says so and it is
    not what was booked (20 units held, 12 injected) — that much is spent, the rest of the hold freed,
    or what the hold does not cover drawn from the free balance (not enough: InsufficientBalance,
    nothing changed)."""
    if quantity is not None:
        require_positive(quantity)
    entry = _commit_held(reservation=reservation, actor=actor, now=now, audit_action=audit_action,
                         idempotency_key=idempotency_key or f"commit:{reservation.idempotency_key}",
                         quantity=quantity)
    reservation.refresh_from_db()
    return entry


@idempotent_entry(EntryKind.REDEEM)
def _commit_held(*, reservation: Reservation, actor: Actor, idempotency_key: str, now: datetime,
                 audit_action: str, quantity: int | None = None) -> LedgerEntry:
    locked_membership = _lock_membership(reservation.membership)
    held = _lock_reservation(reservation)
    if held.status == ReservationStatus.COMMITTED and held.entry_id:
        return held.entry
    if held.status != ReservationStatus.HELD:
        raise IllegalTransition("This hold was released; redeem instead.")
    if actor.location_id is None and held.location_id is not None:
        actor = replace(actor, location_id=held.location_id)   # spent where it was booked (the record's commit)
    done = held.quantity if quantity is None else quantity
    entry = _spend(membership=locked_membership, service=held.service, quantity=done, from_reserved=True,
                   held=held.quantity, actor=actor, reason="Booked treatment completed",
                   idempotency_key=idempotency_key, now=now)
    Reservation.objects.filter(pk=held.pk).update(
        status=ReservationStatus.COMMITTED, entry=entry, resolved_at=now
    )
    if done < held.quantity:
        # the rest of the hold is free again; spared at a boundary only because it was held, it expires now
        expire_returned_units(membership=locked_membership, service_id=held.service_id, actor=actor,
                              key=f"commit:{held.pk}", now=now)
    audit_staff_change(actor=actor, action=audit_action, obj=held, member=locked_membership.member, now=now,
                       detail={"entry_id": entry.pk})
    return entry


@transaction.atomic
def release_reservation(*, reservation: Reservation, actor: Actor, now: datetime,
                        reason: str = "Appointment cancelled", audit_action: str = "release_hold") -> Reservation:
    """Give held units back (cancelled or no-show). Releasing twice changes nothing (and a person's
    release writes its audit row once). Units whose
    lot the cycle boundary would have expired (they were only spared because they were on hold)
    expire now."""
    locked = _lock_membership(reservation.membership)
    held = _lock_reservation(reservation)
    if held.status != ReservationStatus.HELD:
        return held
    move_balance(membership_id=held.membership_id, service_id=held.service_id, delta=0,
                 reserved_delta=-held.quantity, require_reserved=held.quantity)
    Reservation.objects.filter(pk=held.pk).update(status=ReservationStatus.RELEASED, resolved_at=now)
    held.refresh_from_db()
    record_event(
        membership=held.membership, kind=EventKind.RESERVATION_RELEASED,
        summary=f"Released hold of {held.service.format_quantity(held.quantity)} {held.service.name}: {reason}",
        payload={"reservation_id": held.pk, "service_id": held.service_id, "quantity": held.quantity},
        actor=actor, now=now,
    )
    expire_returned_units(membership=locked, service_id=held.service_id, actor=actor,
                          key=f"release:{held.pk}", now=now)
    audit_staff_change(actor=actor, action=audit_action, obj=held, member=locked.member, now=now)
    return held


def release_reservations_of(*, membership: Membership, actor: Actor, now: datetime, reason: str) -> int:
    held = list(Reservation.objects.filter(membership=membership, status=ReservationStatus.HELD))
    for reservation in held:
        release_reservation(reservation=reservation, actor=actor, now=now, reason=reason)
    return len(held)
