"""The cycle boundary: expire what the rollover rule says, then grant the new cycle's lots."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Sum

from memberships.errors import IllegalTransition
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LotSource,
    Membership,
    MembershipStatus,
    RolloverRule,
    Tier,
    TierBenefit,
)

from .common import Actor, move_balance, record_event, write_entry
from .location_prices import price_of
from .idempotency import idempotent


def _expire_lot(*, membership: Membership, lot: CreditLot, quantity: int, actor: Actor, reason: str,
                key: str, now: datetime) -> int:
    """Expire `quantity` of a lot (as `_plan_boundary` bounded it). The balance moves only if that
    much is available, so units on hold for a booked appointment never expire from under it.
    Returns what expired."""
    new_balance = move_balance(membership_id=membership.pk, service_id=lot.service_id, delta=-quantity,
                               require_available=quantity)
    if new_balance is None:
        return 0
    CreditLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining - quantity)
    lot.remaining -= quantity
    write_entry(membership=membership, service_id=lot.service_id, kind=EntryKind.EXPIRE, quantity=-quantity,
                balance_after=new_balance, actor=actor, reason=reason, idempotency_key=key, now=now,
                source=lot.source, movements=[(lot, quantity)])
    return quantity


def apply_rollover(*, membership: Membership, next_cycle: int, actor: Actor, cycle_key: str,
                   now: datetime) -> int:
    """Run the rollover rules at the boundary into `next_cycle`. Returns units/cents expired.

    - none: unused paid credit expires at the boundary (the lot's `expires_at_cycle`);
    - expire after N cycles: the lot expires at the boundary N cycles after its grant;
    - carry over up to a cap: paid credit without a fixed expiry is capped by the *current* tier's
      carry-over cap, oldest first; if the current tier does not carry that service over (after a
      tier change), the cap is zero and it expires;
    - lots of services the (new) tier no longer includes expire, whatever their rule.
    Units on hold never expire from under a booked appointment. Promotional, imported and adjusted
    lots never expire by cycle."""
    return _apply_rules(membership=membership, cycle=next_cycle, actor=actor, key=cycle_key, now=now)


def expire_returned_units(*, membership: Membership, service_id: int, actor: Actor, key: str,
                          now: datetime) -> int:
    """Units that come back after the boundary that should have expired them — a hold released, or
    a redemption reversed, into a lot already past its cycle — expire now, by the same rules the
    boundary ran (they were spared only because they were on hold or spent then)."""
    if not membership.cycle_number:
        return 0
    return _apply_rules(membership=membership, cycle=membership.cycle_number, actor=actor, key=f"late:{key}",
                        now=now, service_id=service_id)


def _plan_boundary(*, lots: list[CreditLot], benefits: dict[int, TierBenefit], cycle: int,
                   available: dict[int, int]) -> list[tuple[CreditLot, int, str, str]]:
    """What the boundary into `cycle` expires: (lot, quantity, reason, key kind) in order. Pure:
    `available` (balance minus units on hold, per service) bounds it, so held units never expire."""
    left = {lot.pk: lot.remaining for lot in lots}
    free = dict(available)
    plan = []

    def take(lot: CreditLot, quantity: int, reason: str, kind: str) -> int:
        quantity = min(quantity, left[lot.pk], max(0, free.get(lot.service_id, 0)))
        if quantity > 0:
            left[lot.pk] -= quantity
            free[lot.service_id] -= quantity
            plan.append((lot, quantity, reason, kind))
        return max(quantity, 0)

    for lot in lots:
        due = lot.expires_at_cycle is not None and lot.expires_at_cycle <= cycle
        dropped = lot.service_id not in benefits
        if due or dropped:
            take(lot, left[lot.pk], "Unused credit expired at the cycle boundary" if due
                 else "Service not in the current tier", "expire")
    for service_id in {lot.service_id for lot in lots if lot.expires_at_cycle is None and left[lot.pk] > 0}:
        benefit = benefits.get(service_id)
        cap = (benefit.rollover_cap or 0) if benefit and benefit.rollover == RolloverRule.CARRY_OVER else 0
        open_lots = [lot for lot in lots if lot.service_id == service_id and lot.expires_at_cycle is None
                     and left[lot.pk] > 0]
        excess = sum(left[lot.pk] for lot in open_lots) - cap
        for lot in open_lots:
            if excess <= 0:
                break
            excess -= take(lot, excess, f"Carry-over above the cap of {cap} expired", "cap")
    return plan


def _boundary_inputs(*, membership: Membership, tier_id: int, cycle: int, service_id: int | None, lock: bool):
    benefits = {b.service_id: b for b in TierBenefit.objects.filter(tier_id=tier_id)}
    lots = CreditLot.objects.filter(membership=membership, remaining__gt=0, source=LotSource.PAID,
                                    cycle_number__lt=cycle)
    if service_id is not None:
        lots = lots.filter(service_id=service_id)
    if lock:
        lots = lots.select_for_update()
    lots = list(lots.order_by("created_at", "id"))
    available = {service: balance - reserved for service, balance, reserved in
                 EntitlementBalance.objects.filter(membership=membership).values_list("service_id", "balance",
                                                                                       "reserved")}
    return lots, benefits, available


def _apply_rules(*, membership: Membership, cycle: int, actor: Actor, key: str, now: datetime,
                 service_id: int | None = None) -> int:
    """The boundary into `cycle`, for the paid lots granted before it (of one service, or all)."""
    lots, benefits, available = _boundary_inputs(membership=membership, tier_id=membership.tier_id, cycle=cycle,
                                                 service_id=service_id, lock=True)
    expired = 0
    for lot, quantity, reason, kind in _plan_boundary(lots=lots, benefits=benefits, cycle=cycle,
                                                      available=available):
        expired += _expire_lot(membership=membership, lot=lot, quantity=quantity, actor=actor, reason=reason,
                               key=f"{kind}:{membership.pk}:{key}:{lot.pk}", now=now)
    return expired


def preview_next_boundary(*, membership: Membership, tier: Tier) -> dict[int, int]:
    """What the next cycle boundary would expire, per service, if `tier` were the membership's tier
    by then (a tier change shows this before it is confirmed). Reads only."""
    cycle = membership.cycle_number + 1
    lots, benefits, available = _boundary_inputs(membership=membership, tier_id=tier.pk, cycle=cycle,
                                                 service_id=None, lock=False)
    expiring: dict[int, int] = {}
    for lot, quantity, _, _ in _plan_boundary(lots=lots, benefits=benefits, cycle=cycle, available=available):
        expiring[lot.service_id] = expiring.get(lot.service_id, 0) + quantity
    return expiring


def preview_next_boundaries(*, memberships: list[Membership]) -> dict[int, dict[int, int]]:
    """`preview_next_boundary` of many memberships at once, each at its scheduled tier, else its
    tier (as the member page shows it): membership id → {service id: quantity}, in three queries.
    Reads only; the same rules (`_plan_boundary`)."""
    tier_of = {m.pk: m.pending_tier_id or m.tier_id for m in memberships}
    benefits: dict[int, dict[int, TierBenefit]] = {tier_id: {} for tier_id in tier_of.values()}
    for benefit in TierBenefit.objects.filter(tier_id__in=set(tier_of.values())):
        benefits[benefit.tier_id][benefit.service_id] = benefit
    lots: dict[int, list[CreditLot]] = {pk: [] for pk in tier_of}
    for lot in CreditLot.objects.filter(membership_id__in=list(tier_of), remaining__gt=0,
                                        source=LotSource.PAID).order_by("created_at", "id"):
        lots[lot.membership_id].append(lot)
    available: dict[int, dict[int, int]] = {pk: {} for pk in tier_of}
    for membership_id, service_id, balance, reserved in EntitlementBalance.objects.filter(
            membership_id__in=list(tier_of)).values_list("membership_id", "service_id", "balance", "reserved"):
        available[membership_id][service_id] = balance - reserved
    previews = {}
    for membership in memberships:
        cycle, expiring = membership.cycle_number + 1, {}
        for lot, quantity, _, _ in _plan_boundary(
                lots=[lot for lot in lots[membership.pk] if lot.cycle_number < cycle],
                benefits=benefits[tier_of[membership.pk]], cycle=cycle, available=available[membership.pk]):
            expiring[lot.service_id] = expiring.get(lot.service_id, 0) + quantity
        previews[membership.pk] = expiring
    return previews


def lot_expiry(benefit: TierBenefit, cycle: int) -> int | None:
    if benefit.rollover == RolloverRule.NONE:
        return cycle + 1
    if benefit.rollover == RolloverRule.EXPIRE_AFTER:
        return cycle + (benefit.expire_after_cycles or 1)
    return None


def _slot_for_late_period(*, membership: Membership, period_start: datetime) -> int | None:
    """A paid cycle whose period began before the newest one granted (its webhook came late): the
    cycle number it would have had, made free by moving the newer paid lots one cycle on (their
    expiry with them). None when no newer lot is known (then it is an ordinary next cycle)."""
    newer = (CreditLot.objects.filter(membership=membership, source=LotSource.PAID, period_start__gt=period_start)
             .order_by("cycle_number").values_list("cycle_number", flat=True).first())
    if newer is None:
        return None
    CreditLot.objects.filter(membership=membership, source=LotSource.PAID, cycle_number__gte=newer).update(
        cycle_number=F("cycle_number") + 1, expires_at_cycle=F("expires_at_cycle") + 1)
    return newer


def _grant_cycle(*, membership: Membership, cycle: int, cycle_key: str, period_start: datetime | None,
                 actor: Actor, now: datetime) -> list[dict]:
    """One lot, one balance move and one grant entry per benefit of the membership's tier."""
    granted = []
    # Only the tier's own practice's services (a benefit pointing elsewhere grants nothing).
    for benefit in TierBenefit.objects.filter(tier_id=membership.tier_id, service__practice_id=membership.tier.practice_id
                                              ).select_related("service"):
        EntitlementBalance.objects.get_or_create(membership=membership, service=benefit.service)
        lot = CreditLot.objects.create(
            membership=membership, service=benefit.service, source=LotSource.PAID, cycle_number=cycle,
            granted=benefit.quantity_per_cycle, remaining=benefit.quantity_per_cycle,
            expires_at_cycle=lot_expiry(benefit, cycle), period_start=period_start, created_at=now,
        )
        new_balance = move_balance(membership_id=membership.pk, service_id=benefit.service_id,
                                   delta=benefit.quantity_per_cycle)
        write_entry(membership=membership, service_id=benefit.service_id, kind=EntryKind.GRANT,
                    quantity=benefit.quantity_per_cycle, balance_after=new_balance, actor=actor,
                    reason=f"Cycle {cycle} refill", idempotency_key=refill_entry_key(membership.pk, cycle_key,
                                                                                     benefit.service_id),
                    now=now, source=LotSource.PAID, movements=[(lot, benefit.quantity_per_cycle)],
                    movement_sign=1, cycle_key=cycle_key)
        granted.append({"service_id": benefit.service_id, "quantity": benefit.quantity_per_cycle,
                        "balance_after": new_balance})
    return granted


def refill_entry_key(membership_id: int, cycle_key: str, service_id: int) -> str:
    return f"refill:{membership_id}:{cycle_key}:{service_id}"


def refill_key(membership_id: int, cycle_key: str) -> str:
    return f"refill:{membership_id}:{cycle_key}"


def _freeze_grant(*, membership: Membership, granted: list[dict], cycle_key: str, actor: Actor,
                  now: datetime) -> None:
    """A cycle paid before the membership ended, heard of after: frozen with the rest."""
    for g in granted:
        EntitlementBalance.objects.filter(membership=membership, service_id=g["service_id"],
                                          frozen_at__isnull=True).update(frozen_at=membership.cancelled_at or now)
        write_entry(membership=membership, service_id=g["service_id"], kind=EntryKind.FREEZE, quantity=0,
                    frozen_quantity=g["quantity"], balance_after=g["balance_after"], actor=actor,
                    reason="Cycle paid before the cancellation: frozen with the rest", now=now,
                    idempotency_key=f"freeze:{membership.pk}:{g['service_id']}:{cycle_key}")


def _refill_operation_key(*, membership: Membership, cycle_key: str, **_) -> str:
    return refill_key(membership.pk, cycle_key)


@idempotent("refill_entitlements", key=_refill_operation_key)
def refill_entitlements(*, membership: Membership, cycle_key: str, actor: Actor, now: datetime,
                        period_start: datetime | None = None, period_end: datetime | None = None,
                        ended_at: datetime | None = None) -> Membership:
    """Grant one billing cycle's benefits, once per `cycle_key` (the processor's invoice id). A
    tier change scheduled for the next cycle takes effect here, before the grant.

    Order comes from the periods, not from arrival: a cycle whose period began before the newest one
    granted slots in at its own cycle (newer lots move one cycle on) and the current boundary's rules
    then run over it, as they would have had it come first. `ended_at`: the membership was cancelled
    (at the processor) after this period began — the cycle is granted and frozen with the rest."""
    # locked alone, then read with its tier (a join in the locking query loses a row whose tier changed meanwhile)
    Membership.objects.select_for_update().filter(pk=membership.pk).values_list("pk", flat=True).get()
    locked = Membership.objects.select_related("tier").get(pk=membership.pk)
    cancelled_after = (locked.status == MembershipStatus.CANCELLED and ended_at is not None
                       and period_start is not None and period_start < ended_at)
    if (locked.status == MembershipStatus.PAUSED and not paid_before_pause(membership=locked, period_start=period_start)
            ) or (locked.status == MembershipStatus.CANCELLED and not cancelled_after):
        raise IllegalTransition(f"No refill while the membership is {locked.get_status_display().lower()}.")
    late_slot = None
    if period_start is not None and locked.current_period_start and period_start < locked.current_period_start:
        # A late cycle keeps the current period; with no newer lot to make room before (a tier that
        # grants nothing), it takes the next number.
        late_slot = (_slot_for_late_period(membership=locked, period_start=period_start)
                     or locked.cycle_number + 1)
    if locked.pending_tier_id and late_slot is None:
        _take_scheduled_tier(locked, actor=actor, now=now)
    next_cycle = locked.cycle_number + 1
    if late_slot is None:
        expired = apply_rollover(membership=locked, next_cycle=next_cycle, actor=actor, cycle_key=cycle_key,
                                 now=now) if locked.cycle_number else 0
        granted = _grant_cycle(membership=locked, cycle=next_cycle, cycle_key=cycle_key,
                               period_start=period_start, actor=actor, now=now)
        locked.current_period_start = period_start or locked.current_period_start or now
        locked.current_period_end = period_end or locked.current_period_end
    else:
        granted = _grant_cycle(membership=locked, cycle=late_slot, cycle_key=cycle_key,
                               period_start=period_start, actor=actor, now=now)
        # The boundaries it missed: the rules of the current cycle, over the late lots.
        expired = _apply_rules(membership=locked, cycle=next_cycle, actor=actor, key=cycle_key, now=now)
    locked.cycle_number = next_cycle
    locked.last_refill_at = now
    if locked.status == MembershipStatus.PENDING:
        locked.status = MembershipStatus.ACTIVE
    if cancelled_after and period_end is not None and period_end > ended_at:
        # as the cancellation would have set it, had this cycle come first
        locked.paid_through = max(locked.paid_through or period_end, period_end)
    locked.save(update_fields=["cycle_number", "last_refill_at", "current_period_start", "current_period_end",
                               "status", "tier", "pending_tier", "paid_through", "updated_at"])
    _record_refill(locked, granted=granted, expired=expired, cycle_key=cycle_key, late_slot=late_slot, actor=actor,
                   now=now)
    if cancelled_after:
        _freeze_grant(membership=locked, granted=granted, cycle_key=cycle_key, actor=actor, now=now)
    return locked


def paid_before_pause(*, membership: Membership, period_start: datetime | None) -> bool:
    """A paused membership's cycle whose period began before the pause did (the staff paused after
    the processor charged, and its webhook came later): it is granted, held until the pause ends."""
    if membership.status != MembershipStatus.PAUSED or period_start is None:
        return False
    since = (Event.objects.filter(membership=membership, kind=EventKind.PAUSED)
             .order_by("-created_at", "-id").values_list("created_at", flat=True).first())
    return since is not None and period_start < since


def _take_scheduled_tier(locked: Membership, *, actor: Actor, now: datetime) -> None:
    """A tier change scheduled for the next cycle takes effect at its start (saved with the refill)."""
    old_tier = locked.tier
    locked.tier = locked.pending_tier
    locked.pending_tier = None
    record_event(membership=locked, kind=EventKind.TIER_CHANGED,
                 summary=f"Tier changed from {old_tier.name} to {locked.tier.name} at the cycle start",
                 payload={"old_tier_id": old_tier.pk, "new_tier_id": locked.tier_id,
                          "effective": "next_cycle",     # the price where it was priced (its location's own)
                          "price_cents": price_of(locked.tier, locked.price_location_id).cents},
                 actor=actor, now=now)


def _record_refill(locked: Membership, *, granted: list[dict], expired: int, cycle_key: str, late_slot: int | None,
                   actor: Actor, now: datetime) -> None:
    summary, payload = refilled_text(cycle_number=late_slot or locked.cycle_number, granted=granted,
                                     expired=expired, cycle_key=cycle_key, late=late_slot is not None)
    record_event(membership=locked, kind=EventKind.REFILLED, summary=summary, payload=payload, actor=actor, now=now)


def refilled_text(*, cycle_number: int, granted: list[dict], expired: int, cycle_key: str,
                  late: bool) -> tuple[str, dict]:
    """The `refilled` event's timeline line and payload, whichever path refilled."""
    summary = (f"Cycle {cycle_number} refilled ({len(granted)} benefits)" if granted else "Cycle refilled") + (
        " (paid before a newer cycle, heard of late)" if late else "")
    return summary, {"cycle_key": cycle_key, "cycle_number": cycle_number, "granted": granted,
                     "expired_total": expired, "summary": ", ".join(f"+{g['quantity']}" for g in granted),
                     "late": late}


def ledger_sum(*, membership_id: int, service_id: int) -> int:
    from memberships.models import LedgerEntry

    return LedgerEntry.objects.filter(membership_id=membership_id, service_id=service_id).aggregate(
        s=Sum("quantity"))["s"] or 0
