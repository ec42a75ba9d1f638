"""Reactions to payment outcomes. Each takes a normalized fact (`billing.facts`), mirrors it into
`Invoice` / `ProcessorSubscription`, and calls the ledger services — in one transaction, idempotent
on the processor's ids, converging whatever order the facts arrive in:
- a paid invoice stays paid (a late failure of it changes nothing);
- a failure counts once per attempt (`attempt_count`), a replay sends nothing new;
- entitlements are refilled once per invoice (`cycle_key` = the invoice id), and only by an invoice
  that opens a billing cycle (`opens_cycle`): any other paid invoice is mirrored and noted;
- a subscription fact older than the newest one applied (`last_event_created`) is ignored.
"""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction

from memberships import services as ledger
from memberships.display import format_money as _money
from memberships.errors import LedgerError
from memberships.models import EventKind, Membership, MembershipStatus
from memberships.services.sql import get_locked

from . import dunning_hooks, standing
from .facts import (
    ChargeActionRequired,
    ChargeFailed,
    ChargeSucceeded,
    InvoiceFacts,
    SubscriptionChanged,
    invoice_reasons,
)
from .models import Invoice, InvoiceStatus, ProcessorSubscription

logger = logging.getLogger(__name__)


class UnknownMembership(LedgerError):
    """The fact names a subscription we do not know yet (its webhook outran our own write): the
    inbox keeps the event and tries again later."""

    code = "unknown_membership"
    http_status = 409


def membership_ref_for(membership: Membership) -> str:
    """The opaque id we put in the processor's metadata."""
    return f"ms_{membership.pk}"


def membership_pk(ref: str) -> int | None:
    """The membership id an opaque ref names (`ms_<pk>`), or None."""
    return _parse_ref(ref)


def _parse_ref(ref: str) -> int | None:
    if ref and ref.startswith("ms_") and ref[3:].isdigit():
        return int(ref[3:])
    return None


def find_membership(*, membership_ref: str, subscription_ref: str, replaced: bool = False) -> Membership | None:
    if subscription_ref:  # `replaced`: also a subscription the membership left (Square's tier change "now")
        found = Membership.objects.filter(processor_subscription_id=subscription_ref).first()  # unique
        if found is None and replaced:
            found = Membership.objects.filter(processor_subscriptions__processor_subscription_id=subscription_ref).first()
        if found is not None:
            return found
    pk = _parse_ref(membership_ref)
    if pk is not None:
        found = Membership.objects.filter(pk=pk).first()
        if found is not None and not (found.processor_subscription_id and subscription_ref
                                      and found.processor_subscription_id != subscription_ref):
            return found
    return None


def _require_membership(fact) -> Membership:
    """The fact's membership, locked for the rest of the transaction: the facts of one membership are
    decided one at a time, so two workers never both read a status that one of them is changing."""
    membership = find_membership(membership_ref=fact.membership_ref, subscription_ref=fact.subscription_ref,
                                 replaced=True)          # its charges and end, once a membership left it
    if membership is None:
        raise UnknownMembership(
            f"No membership for subscription {fact.subscription_ref or '?'} yet.",
            subscription_ref=fact.subscription_ref, membership_ref=fact.membership_ref,
        )
    if fact.subscription_ref and not membership.processor_subscription_id:
        Membership.objects.filter(pk=membership.pk, processor_subscription_id="").update(
            processor_subscription_id=fact.subscription_ref)
    return get_locked(Membership.objects.select_for_update(of=("self",)).select_related("member__practice", "tier"),
                      membership.pk)                     # a tier change committed meanwhile: still found


def _lock_invoice(*, fact: InvoiceFacts, membership: Membership, now: datetime) -> tuple[Invoice, bool]:
    """The invoice row, locked; created from the fact when it is new."""
    defaults = dict(
        practice_id=membership.member.practice_id, membership=membership,
        processor_subscription_id=fact.subscription_ref, amount_cents=fact.amount_cents,
        currency=fact.currency, status=InvoiceStatus.OPEN, period_start=fact.period_start,
        period_end=fact.period_end, processor_created=fact.created, created_at=now, updated_at=now,
    )
    invoice = (Invoice.objects.select_for_update()
               .filter(processor=fact.processor, processor_invoice_id=fact.invoice_ref).first())
    if invoice is not None:
        return invoice, False
    try:
        with transaction.atomic():
            Invoice.objects.create(processor=fact.processor, processor_invoice_id=fact.invoice_ref, **defaults)
    except IntegrityError:
        pass  # a concurrent twin created it first: lock theirs
    return Invoice.objects.select_for_update().get(processor=fact.processor,
                                                   processor_invoice_id=fact.invoice_ref), True


def charge_succeeded_text(invoice: Invoice, *, billing_reason: str, cycle: bool) -> tuple[str, dict]:
    """The `charge succeeded` event's timeline line and payload, whichever path recorded the charge."""
    return (f"Charge of {_money(invoice.amount_paid_cents, invoice.currency)} succeeded",
            {"invoice_id": invoice.pk, "invoice_ref": invoice.processor_invoice_id,
             "amount_cents": invoice.amount_paid_cents, "currency": invoice.currency,
             "billing_reason": billing_reason, "opens_cycle": cycle})


def opens_cycle(*, charge: ChargeSucceeded, membership: Membership) -> tuple[bool, str]:
    """Whether a paid invoice opens a new billing cycle (refill, rollover, the new period), and when
    not, why — in words for the member's timeline. The processor's own reasons for an invoice are
    its adapter's vocabulary (`facts.invoice_reasons`):

    - a reason that opens a cycle (the subscription's first invoice, a renewal): yes — except a
      free trial's first invoice (nothing due before discounts): a trial grants nothing until its
      first paid cycle, so no benefit is handed out for a period the member may cancel unpaid;
    - any other stated reason (prorations invoiced at once, a manual invoice, a usage threshold —
      our tiers are flat prices): no;
    - not stated (Stripe-compatible test servers; Stripe before 2018): a cycle only when the invoice
      has a subscription line whose period starts at or after the end of the membership's current
      period (or the membership has no period yet: its first invoice), or a whole period that ended
      by the start of the current one (a late cycle, slotted in at its own place). An extra invoice
      within the current period is not.
    """
    reason = charge.billing_reason
    reasons = invoice_reasons(charge.processor)
    if charge.trial:
        return False, "a free trial starts: nothing is granted until its first paid cycle"
    if reason in reasons.opens_cycle:
        return True, ""
    if reason in reasons.unstated:
        if charge.period_start is None:
            return False, "it bills no subscription period"
        if membership.current_period_end is None or charge.period_start >= membership.current_period_end:
            return True, ""
        if (charge.period_end is not None and membership.current_period_start is not None
                and charge.period_end <= membership.current_period_start):
            return True, ""             # a whole earlier period, heard of after a newer one: a late cycle
        return False, "its period starts before the current period ends"
    return False, f"it is for {reasons.words.get(reason, reason.replace('_', ' '))}"


def _open_failures(*, membership: Membership, invoice: Invoice):
    """Failed invoices of this membership other than `invoice` that are still open."""
    return (Invoice.objects.filter(membership=membership, status=InvoiceStatus.OPEN, failed_at__isnull=False)
            .exclude(pk=invoice.pk))


def _newer(qs, invoice: Invoice):
    """Invoices of `qs` the processor made after `invoice` (their own `created`; the invoices of one
    subscription are a billing period apart, so a tie is no order)."""
    return qs.filter(processor_created__gt=invoice.processor_created)


def _settles(*, membership: Membership, invoice: Invoice, cycle: bool) -> bool:
    """Whether paying `invoice` brings a past-due membership back. A cycle invoice does unless a
    newer invoice's failure is still open (the latest failed invoice keeps it past due, whatever older
    invoices are paid after it); any other paid invoice only when nothing else failed is open."""
    owed = _open_failures(membership=membership, invoice=invoice)
    return not (_newer(owed, invoice) if cycle else owed).exists()


def _ended_at(*, membership: Membership, processor: str) -> datetime | None:
    """When the processor ended the membership's subscription (the deletion event's time), else when
    the ledger cancelled it; None while it is not cancelled."""
    if membership.status != MembershipStatus.CANCELLED:
        return None
    ended = (ProcessorSubscription.objects.filter(processor=processor, membership=membership,
                                                  status__in=CANCELLED_STATUSES)
             .values_list("last_event_created", flat=True).first())
    if ended:
        return datetime.fromtimestamp(ended, tz=dt_timezone.utc)
    return membership.cancelled_at


@transaction.atomic
def record_charge_succeeded(*, charge: ChargeSucceeded, now: datetime) -> Invoice:
    """A paid invoice: mirror it, bring a past-due membership back (`_settles`), and — when it opens
    a billing cycle (`opens_cycle`) — refill once per invoice. A cycle paid before the subscription
    ended is granted (and frozen) even when its webhook comes after the cancellation; one older than
    the newest cycle granted slots in at its own cycle. Any other paid invoice (prorations, manual…)
    changes no balance and no period: it is mirrored and written on the timeline."""
    membership = _require_membership(charge)
    invoice, _ = _lock_invoice(fact=charge, membership=membership, now=now)
    if invoice.status == InvoiceStatus.PAID:
        return invoice                                  # a replay, or invoice.paid + payment_succeeded
    cycle, why_not = opens_cycle(charge=charge, membership=membership)
    invoice.status = InvoiceStatus.PAID
    invoice.opened_cycle = cycle
    invoice.amount_paid_cents = charge.amount_paid_cents or charge.amount_cents
    invoice.amount_cents = charge.amount_cents
    invoice.paid_at = charge.paid_at or now
    invoice.attempt_count = max(invoice.attempt_count, charge.attempt_count)
    invoice.period_start = charge.period_start or invoice.period_start
    invoice.period_end = charge.period_end or invoice.period_end
    invoice.processor_created = charge.created or invoice.processor_created
    invoice.next_payment_attempt = None
    invoice.last_event_created = max(invoice.last_event_created, charge.event_created)
    invoice.updated_at = now
    invoice.save()

    actor = ledger.Actor.processor(charge.processor)
    summary, payload = charge_succeeded_text(invoice, billing_reason=charge.billing_reason, cycle=cycle)
    ledger.record_event(membership=membership, kind=EventKind.CHARGE_SUCCEEDED, summary=summary, payload=payload,
                        actor=actor, now=now)
    recovered = False
    if membership.status in (MembershipStatus.PAST_DUE, MembershipStatus.LAPSED) and _settles(membership=membership, invoice=invoice, cycle=cycle):
        membership = ledger.mark_recovered(membership=membership, actor=actor, now=now,
                                           idempotency_key=f"recovered:{invoice.processor_invoice_id}",
                                           invoice_ref=invoice.processor_invoice_id)
        recovered = True
    if not cycle:
        ledger.record_event(
            membership=membership, kind=EventKind.NOTE,
            summary=f"Invoice {invoice.processor_invoice_id} paid; not a new billing cycle ({why_not}): "
                    f"nothing refilled",
            payload={"invoice_id": invoice.pk, "invoice_ref": invoice.processor_invoice_id,
                     "billing_reason": charge.billing_reason}, actor=actor, now=now)
    else:
        _refill_for(invoice=invoice, membership=membership, charge=charge, actor=actor, now=now)
    dunning_hooks.charge_succeeded(invoice=invoice, membership=membership, recovered=recovered, now=now)
    return invoice


def _refill_for(*, invoice: Invoice, membership: Membership, charge: ChargeSucceeded, actor, now: datetime) -> None:
    if membership.status == MembershipStatus.PAUSED and membership.paused_until is not None:
        # The processor resumed collecting on the pause's end date; the ledger resumes with it
        # (the hourly job may have done so already: the same key makes it once).
        billed_from = max(now, invoice.period_start or now)
        if membership.member.practice.local_date(billed_from) >= membership.paused_until:
            membership = ledger.resume_membership(membership=membership, actor=actor, now=now,
                                                  idempotency_key=ledger.resume_key(membership))
    ended_at = _ended_at(membership=membership, processor=charge.processor)
    if membership.status in (MembershipStatus.PENDING, MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE, MembershipStatus.LAPSED) or (
            ended_at is not None and invoice.period_start is not None and invoice.period_start < ended_at) or (
            ledger.paid_before_pause(membership=membership, period_start=invoice.period_start)):
        ledger.refill_entitlements(membership=membership, cycle_key=invoice.processor_invoice_id, actor=actor,
                                   now=now, period_start=invoice.period_start, period_end=invoice.period_end,
                                   ended_at=ended_at)
        return
    logger.warning("invoice %s paid for membership %s in status %s: no refill", invoice.pk, membership.pk,
                   membership.status)
    ledger.record_event(
        membership=membership, kind=EventKind.NOTE,
        summary=f"Charge received while {membership.get_status_display().lower()}: nothing refilled; "
                f"check the subscription with the processor",
        payload={"invoice_id": invoice.pk, "invoice_ref": invoice.processor_invoice_id}, actor=actor,
        now=now)


def _emitted_at(event_created: int, *, now: datetime) -> datetime:
    """When the processor says a fact happened (its event's `created`), not when we processed it; a
    clock ahead of ours, or no time given, is read as now."""
    if not event_created:
        return now
    return min(datetime.fromtimestamp(event_created, tz=dt_timezone.utc), now)


def _record_failure(*, fact: InvoiceFacts, hard: bool, failure_code: str, decline_code: str,
                    next_payment_attempt, action_required: bool, now: datetime) -> Invoice:
    """A failed attempt. It marks the membership past due unless a newer cycle was paid since (a
    late webhook of an older invoice): the invoice's case still opens — it is still owed."""
    membership = _require_membership(fact)
    invoice, _ = _lock_invoice(fact=fact, membership=membership, now=now)
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        return invoice                                  # stale: the invoice was settled (or forgiven) since
    attempt = max(fact.attempt_count, 1)
    if attempt < invoice.attempt_count or (attempt == invoice.attempt_count and invoice.failed_at is not None
                                           and fact.event_created <= invoice.last_event_created):
        return invoice                                  # a replay or an older attempt
    invoice.attempt_count = attempt
    invoice.amount_cents = fact.amount_cents
    invoice.status = InvoiceStatus.OPEN
    invoice.last_failure_code = failure_code[:60]
    invoice.last_decline_code = decline_code[:60]
    invoice.hard_decline = hard
    invoice.action_required = action_required
    invoice.failed_at = _emitted_at(fact.event_created, now=now)
    invoice.next_payment_attempt = next_payment_attempt
    invoice.processor_created = fact.created or invoice.processor_created
    invoice.last_event_created = max(invoice.last_event_created, fact.event_created)
    invoice.updated_at = now
    invoice.save()

    actor = ledger.Actor.processor(fact.processor)
    kind = EventKind.PAYMENT_ACTION_REQUIRED if action_required else EventKind.PAYMENT_FAILED
    what = "needs the member to authenticate" if action_required else "failed"
    ledger.record_event(
        membership=membership, kind=kind,
        summary=f"Charge of {_money(invoice.amount_cents, invoice.currency)} {what} (attempt {attempt})",
        payload={"invoice_id": invoice.pk, "invoice_ref": invoice.processor_invoice_id,
                 "amount_cents": invoice.amount_cents, "currency": invoice.currency, "attempt_count": attempt,
                 "failure_code": invoice.last_failure_code, "decline_code": invoice.last_decline_code,
                 "hard": hard, "action_required": action_required},
        actor=actor, now=now,
    )
    superseded = _newer(Invoice.objects.filter(membership=membership, status=InvoiceStatus.PAID, opened_cycle=True),
                        invoice).exists()
    if membership.status in (MembershipStatus.ACTIVE, MembershipStatus.PENDING) and not superseded:
        membership = ledger.mark_past_due(membership=membership, actor=actor, now=now,
                                          idempotency_key=f"past_due:{invoice.processor_invoice_id}",
                                          invoice_ref=invoice.processor_invoice_id)
    dunning_hooks.charge_failed(invoice=invoice, membership=membership, hard=hard,
                                failure_code=invoice.last_failure_code, decline_code=invoice.last_decline_code,
                                action_required=action_required, attempt_count=attempt, superseded=superseded,
                                now=now)
    return invoice


@transaction.atomic
def record_charge_failed(*, charge: ChargeFailed, now: datetime) -> Invoice:
    """A failed attempt: mirror it, mark the membership past due, hand the case to dunning."""
    return _record_failure(fact=charge, hard=charge.hard, failure_code=charge.failure_code,
                           decline_code=charge.decline_code, next_payment_attempt=charge.next_payment_attempt,
                           action_required=False, now=now)


@transaction.atomic
def record_charge_action_required(*, charge: ChargeActionRequired, now: datetime) -> Invoice:
    """The charge waits for the member (3-D Secure): a failure that retries cannot fix alone."""
    return _record_failure(fact=charge, hard=True, failure_code="authentication_required",
                           decline_code="authentication_required",
                           next_payment_attempt=charge.next_payment_attempt, action_required=True, now=now)


CANCELLED_STATUSES = ("canceled", "incomplete_expired")


@transaction.atomic
def record_subscription_changed(*, change: SubscriptionChanged, now: datetime) -> ProcessorSubscription | None:
    """Mirror the processor's subscription. The ledger is the authority on tier and pause; from the
    processor we accept only what it alone decides: the subscription ended (at the processor or after
    its own retries), it fell past due, or it is active again with nothing owed (`standing`)."""
    membership = _require_membership(change)
    sub = (ProcessorSubscription.objects.select_for_update()
           .filter(processor=change.processor, processor_subscription_id=change.subscription_ref).first())
    if sub is None:
        try:
            with transaction.atomic():
                ProcessorSubscription.objects.create(
                    membership=membership, processor=change.processor,
                    processor_subscription_id=change.subscription_ref, updated_at=now)
        except IntegrityError:
            pass
        sub = ProcessorSubscription.objects.select_for_update().get(
            processor=change.processor, processor_subscription_id=change.subscription_ref)
    if change.event_created < sub.last_event_created:
        return sub                                      # stale: a newer state was applied already
    if sub.status in CANCELLED_STATUSES and change.status not in CANCELLED_STATUSES:
        return sub                                      # an ended subscription never comes back
    sub.processor_customer_id = change.customer_ref or sub.processor_customer_id
    sub.status = change.status
    sub.price_ref = change.price_ref
    sub.amount_cents = change.amount_cents
    sub.cancel_at_period_end = change.cancel_at_period_end
    sub.collection_paused = change.collection_paused
    sub.current_period_start = change.current_period_start
    sub.current_period_end = change.current_period_end
    sub.last_event_created = change.event_created
    sub.updated_at = now
    sub.save()

    actor = ledger.Actor.processor(change.processor)
    if change.status in CANCELLED_STATUSES or change.deleted:
        if membership.status != MembershipStatus.CANCELLED and membership.processor_subscription_id == change.subscription_ref:
            membership = ledger.cancel_membership(
                membership=membership, actor=actor, now=now, idempotency_key=f"cancel:{change.subscription_ref}",
                reason="Subscription ended at the processor",
                ended_at=datetime.fromtimestamp(change.event_created, tz=dt_timezone.utc) if change.event_created
                else None)
            dunning_hooks.membership_ended(membership=membership, now=now)
    elif change.status in ("past_due", "unpaid"):
        # Only a paid invoice that opened a cycle since settles it (as only such an invoice makes a
        # failure stale); a proration or manual invoice paid since does not.
        settled_since = Invoice.objects.filter(membership=membership, status=InvoiceStatus.PAID, opened_cycle=True,
                                               last_event_created__gt=change.event_created).exists()
        if membership.status in (MembershipStatus.ACTIVE, MembershipStatus.PENDING) and not settled_since and \
                not standing.settled_by_forgiveness(membership=membership, change=change):
            ledger.mark_past_due(membership=membership, actor=actor, now=now,
                                 idempotency_key=f"past_due:{change.subscription_ref}:{change.event_created}")
    else:
        standing.subscription_in_good_standing(membership=membership, change=change, now=now)
    return sub
