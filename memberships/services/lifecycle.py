"""Membership status changes: enroll, tier change, pause/resume, cancel, and the billing-facing
transitions. Each records an Event in the same transaction (the outbox tells the processor and the
record); a change made by staff also writes its audit row there (the actor carries the request's
address). Replaying a key changes nothing; `service.outcome(...)` says whether a call was a replay."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from memberships.errors import IllegalTransition, InvalidTier
from memberships.failures import log_failure
from memberships.models import (
    AutomationStage,
    EntitlementBalance,
    EntryKind,
    EventKind,
    Member,
    Membership,
    MembershipStatus,
    Practice,
    Tier,
    TierBenefit,
)

from .common import Actor, audit_staff_change, record_event, write_entry
from .idempotency import idempotent
from .location_prices import change_pricing_location, price_of, pricing_location
from .members import create_member
from .redemption import release_reservations_of
from .stages import stage_at_least_for

logger = logging.getLogger(__name__)

# The statuses whose tier may change (not a lapsed or cancelled membership).
TIER_CHANGEABLE = (MembershipStatus.PENDING, MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE,
                   MembershipStatus.PAUSED)


def _lock(membership: Membership) -> Membership:
    """The membership locked, then read with its tier and practice. The lock takes the row alone: joined
    to its tier in the locking query, PostgreSQL re-checks a row a concurrent tier change moved against
    the tier it joined before and finds no row (two desks changing a tier at once: the second failed)."""
    Membership.objects.select_for_update().filter(pk=membership.pk).values_list("pk", flat=True).get()
    return Membership.objects.select_related("tier", "member__practice").get(pk=membership.pk)


def _transition(membership: Membership, *, allowed_from: tuple[str, ...], to: str, verb: str) -> None:
    if membership.status not in allowed_from:
        raise IllegalTransition(
            f"Cannot {verb} a membership that is {membership.get_status_display().lower()}.",
            status=membership.status,
        )
    membership.status = to


@idempotent("enroll_member")
def enroll_member(*, member: Member, tier: Tier, actor: Actor, idempotency_key: str, now: datetime,
                  processor_subscription_id: str = "", at_list_price: bool = False) -> Membership:
    """Start a membership (pending until the first successful charge seeds the balance), at the home
    location's own price for the tier if it has one — or at the tier's (`at_list_price`: a join online,
    whose hosted page charged the tier's price)."""
    if tier.practice_id != member.practice_id or not tier.active:
        raise InvalidTier("Choose an active tier of this practice.")
    Member.objects.select_for_update().filter(pk=member.pk).first()  # two desks enrolling one member
    if Membership.objects.filter(member=member).exclude(status=MembershipStatus.CANCELLED).exists():
        raise IllegalTransition("This member already has an open membership; change its tier instead.")
    price = price_of(tier, None if at_list_price else pricing_location(member=member, tier=tier))
    membership = Membership.objects.create(
        member=member, tier=tier, status=MembershipStatus.PENDING, started_at=now,
        processor_subscription_id=processor_subscription_id, enrolled_location_id=actor.location_id,
        price_location_id=price.location_id,
    )
    EntitlementBalance.objects.bulk_create(
        [EntitlementBalance(membership=membership, service_id=b.service_id)
         for b in TierBenefit.objects.filter(tier=tier)]
    )
    record_event(membership=membership, kind=EventKind.ENROLLED,
                 summary=f"Enrolled in {tier.name} at {price.display}",
                 payload={"tier_id": tier.pk, "price_cents": price.cents, "currency": tier.currency},
                 actor=actor, now=now)
    audit_staff_change(actor=actor, action="enroll", obj=membership, member=member, now=now,
                       detail={"tier": tier.pk})
    return membership


@idempotent("enroll_new_member")
def enroll_new_member(*, practice: Practice, first_name: str, last_name: str, email: str = "", phone: str = "",
                      sms_consent: bool = False, tier: Tier, actor: Actor, idempotency_key: str,
                      now: datetime) -> Membership:
    """Register a new member and enroll them in `tier`, in one transaction (both or neither)."""
    member = create_member(practice=practice, first_name=first_name, last_name=last_name, email=email, phone=phone,
                           sms_consent=sms_consent, actor=actor, idempotency_key=f"{idempotency_key}:member", now=now)
    return enroll_member(member=member, tier=tier, actor=actor, idempotency_key=f"{idempotency_key}:enroll", now=now)


class IntervalChangeRefused(IllegalTransition):
    code = "interval_change_not_supported"


def check_interval_change(*, membership: Membership, new_tier: Tier) -> None:
    """Refuse a move between a monthly and a yearly tier where the ledger changes the member's Stripe
    subscription (`tier_sync` at the member's stage). Stripe bills the new price for a full period as
    soon as the change reaches it — "at the renewal" too, since the change is sent when made — and
    restarts the renewal date that day; that invoice (`subscription_update`) opens no cycle in the
    ledger, so the member would pay and be granted nothing until the next renewal. Cancelling and
    enrolling in the other tier bills and grants together. Square swaps plans at a cycle's end (a
    change "now" ends the paid month first), so its next invoice is a cycle of the new tier and
    grants it; below `tier_sync` the practice changes the subscription itself."""
    old_tier = membership.tier
    if new_tier.pk == old_tier.pk or new_tier.interval == old_tier.interval:
        return
    practice = membership.member.practice
    if practice.processor != "stripe" or not stage_at_least_for(membership, AutomationStage.TIER_SYNC):
        return
    raise IntervalChangeRefused(
        f"{old_tier.name} bills {old_tier.get_interval_display().lower()} and {new_tier.name} "
        f"{new_tier.get_interval_display().lower()}: Stripe would bill {new_tier.name} at once and move the "
        f"renewal date, and the member's new benefits would not start until the next renewal. Instead, cancel "
        f"this membership (its balance is frozen) and enroll the member in {new_tier.name}: its first payment "
        f"fills the new balances.",
        old_interval=old_tier.interval, new_interval=new_tier.interval)


def _check_effective(*, effective: str, **_) -> None:
    if effective not in ("now", "next_cycle"):
        raise IllegalTransition("effective must be 'now' or 'next_cycle'.")


@idempotent("change_tier", check=_check_effective)
def change_tier(*, membership: Membership, new_tier: Tier, effective: str = "now", actor: Actor,
                idempotency_key: str, now: datetime) -> Membership:
    """Move to another tier, now or at the next cycle.

    The stated rule for balances: what was already granted stays usable until the next cycle
    boundary; lots with a fixed expiry keep it; the new tier's benefits and rollover rules apply
    from the next refill on, so at that boundary carried-over credit is capped by the new tier's
    carry-over cap (zero if it does not carry that service over) and unused paid credit for
    services the new tier does not include expires. Choosing the current tier while a change is
    scheduled withdraws the scheduled change. The price
    changes with the tier (now: immediately, with the practice's proration setting; next cycle: at
    renewal)."""
    locked = _change_tier(membership=membership, new_tier=new_tier, effective=effective, actor=actor, now=now)
    audit_staff_change(actor=actor, action="change_tier", obj=locked, member=locked.member, now=now,
                       detail={"tier": new_tier.pk, "effective": effective})
    return locked


def _change_tier(*, membership: Membership, new_tier: Tier, effective: str, actor: Actor, now: datetime) -> Membership:
    locked = _lock(membership)
    if new_tier.practice_id != locked.member.practice_id or not new_tier.active:
        raise InvalidTier("Choose an active tier of this practice.")
    if locked.status not in TIER_CHANGEABLE:
        raise IllegalTransition(f"Cannot change the tier of a {locked.get_status_display().lower()} membership.")
    if new_tier.pk == locked.tier_id:
        return _withdraw_scheduled_change(locked, actor=actor, now=now)
    check_interval_change(membership=locked, new_tier=new_tier)
    old_tier = locked.tier
    # A tier change re-reads whose price applies: the member's home location's own price, if any.
    old_price = price_of(old_tier, locked.price_location_id)
    new_price = price_of(new_tier, change_pricing_location(membership=locked, tier=new_tier, effective=effective))
    payload = {"old_tier_id": old_tier.pk, "new_tier_id": new_tier.pk, "effective": effective,
               "old_price_cents": old_price.cents, "price_cents": new_price.cents,
               "currency": new_tier.currency}
    locked.price_location_id = new_price.location_id
    if effective == "now":
        locked.tier = new_tier
        locked.pending_tier = None
        for benefit in TierBenefit.objects.filter(tier=new_tier):
            EntitlementBalance.objects.get_or_create(membership=locked, service_id=benefit.service_id)
        kind, summary = EventKind.TIER_CHANGED, f"Tier changed from {old_tier.name} to {new_tier.name}"
    else:
        locked.pending_tier = new_tier
        kind = EventKind.TIER_CHANGE_SCHEDULED
        summary = f"Tier change to {new_tier.name} scheduled for the next cycle"
    locked.save(update_fields=["tier", "pending_tier", "price_location", "updated_at"])
    record_event(membership=locked, kind=kind, summary=summary, payload=payload, actor=actor, now=now)
    return locked


def _withdraw_scheduled_change(locked: Membership, *, actor: Actor, now: datetime) -> Membership:
    """The current tier chosen again: the scheduled change is withdrawn (nothing scheduled: refused)."""
    if locked.pending_tier_id is None:
        raise InvalidTier("The member is already on that tier.")
    withdrawn = locked.pending_tier
    locked.pending_tier = None
    locked.save(update_fields=["pending_tier", "updated_at"])
    record_event(membership=locked, kind=EventKind.TIER_CHANGE_SCHEDULED,
                 summary=f"Scheduled change to {withdrawn.name} withdrawn; staying on {locked.tier.name}",
                 payload={"old_tier_id": locked.tier_id, "new_tier_id": locked.tier_id,
                          "withdrawn_tier_id": withdrawn.pk, "effective": "next_cycle",
                          "old_price_cents": withdrawn.price_cents, "price_cents": locked.tier.price_cents,
                          "currency": locked.tier.currency},
                 actor=actor, now=now)
    return locked


@idempotent("pause_membership")
def pause_membership(*, membership: Membership, until: date, actor: Actor, idempotency_key: str,
                     now: datetime, reason: str = "") -> Membership:
    """Pause until a date: no refills and no redemptions while paused; the processor stops collecting."""
    locked = _lock(membership)
    if until <= locked.member.practice.local_date(now):
        raise IllegalTransition("The pause must end after today (the practice's date).")
    _transition(locked, allowed_from=(MembershipStatus.ACTIVE,), to=MembershipStatus.PAUSED, verb="pause")
    locked.paused_until = until
    locked.save(update_fields=["status", "paused_until", "updated_at"])
    release_reservations_of(membership=locked, actor=actor, now=now, reason="Membership paused")
    record_event(membership=locked, kind=EventKind.PAUSED, summary=f"Paused until {until:%b %d, %Y}",
                 payload={"until": until.isoformat(), "reason": reason[:200]}, actor=actor, now=now)
    audit_staff_change(actor=actor, action="pause", obj=locked, member=locked.member, now=now,
                       detail={"until": until.isoformat()})
    return locked


@idempotent("resume_membership")
def resume_membership(*, membership: Membership, actor: Actor, idempotency_key: str, now: datetime) -> Membership:
    locked = _lock(membership)
    _transition(locked, allowed_from=(MembershipStatus.PAUSED,), to=MembershipStatus.ACTIVE, verb="resume")
    locked.paused_until = None
    locked.save(update_fields=["status", "paused_until", "updated_at"])
    record_event(membership=locked, kind=EventKind.RESUMED, summary="Resumed", payload={},
                 actor=actor, now=now)
    audit_staff_change(actor=actor, action="resume", obj=locked, member=locked.member, now=now)
    return locked


def resume_key(membership: Membership) -> str:
    """One automatic resume per pause (the end date names the pause)."""
    return f"auto-resume:{membership.pk}:{membership.paused_until.isoformat()}"


def resume_due_pauses(*, now: datetime) -> int:
    """Resume every pause whose end date has come in its practice's time zone (the processor
    resumes collecting on that date by itself). Each membership on its own; one that fails is
    logged and left for the next run."""
    resumed = 0
    due = (Membership.objects.filter(status=MembershipStatus.PAUSED, paused_until__lte=now.date() + timedelta(days=1))
           .select_related("member__practice").order_by("paused_until", "id"))
    for membership in due:
        if membership.member.practice.local_date(now) < membership.paused_until:
            continue
        try:
            resume_membership(membership=membership, actor=Actor.system("pause ended"),  # its own transaction
                              idempotency_key=resume_key(membership), now=now)
            resumed += 1
        except IllegalTransition:
            continue                                   # resumed or cancelled meanwhile
        except Exception as exc:
            log_failure(logger, "could not resume membership %s after its pause", membership.pk, exc=exc)
    return resumed


@idempotent("cancel_membership")
def cancel_membership(*, membership: Membership, actor: Actor, idempotency_key: str, now: datetime,
                      reason: str = "", ended_at: datetime | None = None) -> Membership:
    """Close the tier and freeze the balance (freeze entries, nothing deleted). Whether frozen credit
    stays usable until the paid period ends is the practice's setting: it is paid through the end of
    the current period if that is after the end (`ended_at`: when the processor ended the
    subscription, by its own clock; else now)."""
    locked = _lock(membership)
    if locked.status == MembershipStatus.CANCELLED:
        raise IllegalTransition("The membership is already cancelled.")
    release_reservations_of(membership=locked, actor=actor, now=now, reason="Membership cancelled")
    locked.status = MembershipStatus.CANCELLED
    locked.cancelled_at = now
    locked.pending_tier = None
    end = ended_at or now
    locked.paid_through = locked.current_period_end if (
        locked.current_period_end and locked.current_period_end > end) else end
    locked.cancel_reason = reason[:200]
    locked.save(update_fields=["status", "cancelled_at", "pending_tier", "paid_through", "cancel_reason",
                               "updated_at"])
    frozen = []
    for balance in EntitlementBalance.objects.select_for_update().filter(membership=locked):
        EntitlementBalance.objects.filter(pk=balance.pk).update(frozen_at=now)
        write_entry(membership=locked, service_id=balance.service_id, kind=EntryKind.FREEZE, quantity=0,
                    frozen_quantity=balance.balance, balance_after=balance.balance, actor=actor,
                    reason=reason or "Membership cancelled", now=now,
                    idempotency_key=f"freeze:{locked.pk}:{balance.service_id}")
        frozen.append({"service_id": balance.service_id, "quantity": balance.balance})
    record_event(membership=locked, kind=EventKind.CANCELLED,
                 summary="Cancelled; balance frozen" + (f" ({reason[:100]})" if reason else ""),
                 payload={"frozen": frozen, "paid_through": locked.paid_through.isoformat()},
                 actor=actor, now=now)
    audit_staff_change(actor=actor, action="cancel", obj=locked, member=locked.member, now=now)
    return locked


@idempotent("mark_past_due")
def mark_past_due(*, membership: Membership, actor: Actor, idempotency_key: str, now: datetime,
                  invoice_ref: str = "") -> Membership:
    return _billing_transition(
        membership=membership, allowed_from=(MembershipStatus.ACTIVE, MembershipStatus.PENDING),
        to=MembershipStatus.PAST_DUE, verb="mark past due", kind=EventKind.PAST_DUE,
        summary="Payment failed; membership past due", payload={"invoice_ref": invoice_ref}, actor=actor, now=now,
    )


@idempotent("mark_recovered")
def mark_recovered(*, membership: Membership, actor: Actor, idempotency_key: str, now: datetime,
                   invoice_ref: str = "", forgiven: bool = False) -> Membership:
    """Back to active. `forgiven`: nothing was paid — the processor no longer expects the payment (an
    invoice voided or written off), so the timeline says so and the payload is marked."""
    return _billing_transition(
        membership=membership, allowed_from=(MembershipStatus.PAST_DUE, MembershipStatus.LAPSED),
        to=MembershipStatus.ACTIVE, verb="recover", kind=EventKind.RECOVERED,
        summary="No payment owed any more; membership active" if forgiven else "Payment recovered; membership active",
        payload={"invoice_ref": invoice_ref, **({"forgiven": True} if forgiven else {})}, actor=actor, now=now,
    )


@idempotent("mark_lapsed")
def mark_lapsed(*, membership: Membership, actor: Actor, idempotency_key: str, now: datetime,
                reason: str = "") -> Membership:
    return _billing_transition(
        membership=membership, allowed_from=(MembershipStatus.PAST_DUE,), to=MembershipStatus.LAPSED,
        verb="lapse", kind=EventKind.LAPSED, summary="Lapsed: payment not recovered",
        payload={"reason": reason[:200]}, actor=actor, now=now,
    )


def _billing_transition(*, membership: Membership, allowed_from: tuple[str, ...], to: str, verb: str,
                        kind: str, summary: str, payload: dict, actor: Actor, now: datetime) -> Membership:
    locked = _lock(membership)
    _transition(locked, allowed_from=allowed_from, to=to, verb=verb)
    locked.save(update_fields=["status", "updated_at"])
    record_event(membership=locked, kind=kind, summary=summary, payload=payload, actor=actor, now=now)
    return locked
