"""Stripe's webhooks, read: `verify_and_parse()` checks a webhook's `Stripe-Signature` and returns the
event; `parse_event()` turns a Stripe event (current API shape, `parent.subscription_details`, and the
older shape with a top-level `subscription`/`charge`) into the normalized fact it states. Pure: no
call to Stripe (the API client, `stripe.py`, completes what an event leaves out)."""

from __future__ import annotations

import json
from datetime import datetime, timezone as dt_timezone
from typing import Any

import stripe

from billing.facts import InvoiceForgiven, InvoiceReasons

from .base import (
    CardSaved,
    ChargeActionRequired,
    CheckoutCompleted,
    ChargeFailed,
    ChargeSucceeded,
    DefaultCardChanged,
    IgnoredEvent,
    InboundFact,
    SubscriptionChanged,
    is_hard_decline,
)
from .stripe_reversals import PAYMENT_REVERSED, reversal_fact

PROCESSOR = "stripe"
SIGNATURE_TOLERANCE_SECONDS = 300

# The events to enable on the Stripe webhook endpoint (README lists them).
INVOICE_PAID = {"invoice.paid", "invoice.payment_succeeded"}
INVOICE_FAILED = {"invoice.payment_failed"}
INVOICE_ACTION = {"invoice.payment_action_required"}
# No payment expected any more: voided (forgiven), or marked uncollectible (written off). Stripe then
# moves a past-due subscription whose latest invoice it was to active (customer.subscription.updated).
INVOICE_FORGIVEN = {"invoice.voided": "void", "invoice.marked_uncollectible": "uncollectible"}
SUBSCRIPTION = {"customer.subscription.created", "customer.subscription.updated",
                "customer.subscription.deleted", "customer.subscription.paused",
                "customer.subscription.resumed"}
# A hosted checkout completed; one paid by a method whose payment settles days later (a bank debit: the
# session completes with `payment_status` "unpaid") is settled by `async_payment_succeeded`, or not by
# `async_payment_failed` (Stripe: "Occurs when a payment intent using a delayed payment method finally
# succeeds / fails"). A join enrolls on whichever of them says "paid".
CHECKOUT_COMPLETED = "checkout.session.completed"
CHECKOUT_SETTLED = "checkout.session.async_payment_succeeded"
CHECKOUT_NOT_SETTLED = "checkout.session.async_payment_failed"
CHECKOUT = {CHECKOUT_COMPLETED, CHECKOUT_SETTLED, CHECKOUT_NOT_SETTLED}
CUSTOMER = {"customer.updated"}     # a new default card (the Billing Portal's card update)
# A payment refunded or disputed: noted on the member's timeline (`stripe_reversals`).
HANDLED_EVENT_TYPES = frozenset(INVOICE_PAID | INVOICE_FAILED | INVOICE_ACTION | set(INVOICE_FORGIVEN) | SUBSCRIPTION
                                | CHECKOUT | CUSTOMER | set(PAYMENT_REVERSED))
# Those the inbox completes from Stripe before applying: a failure's decline code, a dispute's charge.
READ_AHEAD = frozenset(INVOICE_FAILED | {"charge.dispute.created"})


class InvalidSignature(Exception):
    pass


# Why Stripe made an invoice (`billing_reason`), for billing (`billing.facts.InvoiceReasons`): the
# subscription's first invoice and each renewal open a billing cycle (a payment retried after a failure
# is the same invoice, so it refills once); "" (Stripe-compatible test servers send none) and
# "subscription" (Stripe's word before May 2018 for creates, cycles and updates alike) say nothing.
INVOICE_REASONS = InvoiceReasons(
    opens_cycle=frozenset({"subscription_create", "subscription_cycle"}),
    unstated=frozenset({"", "subscription"}),
    words={
        "subscription_update": "a subscription change (prorations)",
        "subscription_threshold": "a usage threshold",
        "manual": "a manual invoice",
        "upcoming": "a preview",
        "quote_accept": "an accepted quote",
        "automatic_pending_invoice_item_invoice": "pending invoice items",
    },
)


def verify_and_parse(*, body: bytes, signature_header: str, secret: str) -> dict:
    """Verify the raw bytes against `Stripe-Signature` (HMAC-SHA256, 300 s tolerance) and return the
    event as a plain dict. Raises InvalidSignature."""
    if not signature_header:
        raise InvalidSignature("missing Stripe-Signature")
    try:
        stripe.WebhookSignature.verify_header(body.decode("utf-8"), signature_header, secret,
                                              tolerance=SIGNATURE_TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise InvalidSignature(str(exc)) from None
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidSignature("body is not JSON") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise InvalidSignature("not a Stripe event")
    return event


def moment_of(value) -> datetime | None:
    """A Unix timestamp → an aware datetime (None for none)."""
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)


def id_of(value) -> str:
    """An expandable field: an id string, or an embedded object with an id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _invoice_subscription(inv: dict) -> tuple[str, dict]:
    """(subscription id, subscription metadata) from the current shape or the older one."""
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    sub = id_of(details.get("subscription")) or id_of(inv.get("subscription"))
    metadata = dict(details.get("metadata") or inv.get("subscription_details", {}).get("metadata") or {})
    if not metadata and isinstance(inv.get("subscription"), dict):
        metadata = dict(inv["subscription"].get("metadata") or {})
    for line in (inv.get("lines") or {}).get("data") or []:
        if not sub:
            line_parent = (line.get("parent") or {}).get("subscription_item_details") or {}
            sub = id_of(line_parent.get("subscription")) or id_of(line.get("subscription"))
        if not metadata and line.get("metadata"):
            metadata = dict(line["metadata"])
    return sub, metadata


def _is_subscription_line(line: dict) -> bool:
    """The plan's own line of a subscription invoice, not a proration nor an invoice item: current
    shape `parent.type == "subscription_item_details"` with `proration: false`; older shape
    `type == "subscription"` with `proration: false`."""
    parent = line.get("parent") or {}
    if parent.get("type") == "subscription_item_details":
        return not (parent.get("subscription_item_details") or {}).get("proration")
    return line.get("type") == "subscription" and not line.get("proration")


def _invoice_period(inv: dict) -> tuple[datetime | None, datetime | None]:
    """The service period the invoice bills: its subscription line's period. Not the invoice-level
    period_start/end (for a renewal that is the previous period), nor a proration line's (the rest of
    the period after a change). (None, None) when the invoice bills no subscription line."""
    for line in (inv.get("lines") or {}).get("data") or []:
        period = line.get("period") or {}
        if _is_subscription_line(line) and period.get("start") and period.get("end"):
            return moment_of(period["start"]), moment_of(period["end"])
    return None, None


def _starts_trial(inv: dict) -> bool:
    """A `subscription_create` invoice whose subscription line bills nothing before discounts (a
    line's `amount` is before discounts): a free trial starts. A 100%-off coupon leaves the line's
    amount, so that is a paid cycle the practice discounted."""
    if inv.get("billing_reason") != "subscription_create":
        return False
    lines = [line for line in (inv.get("lines") or {}).get("data") or [] if _is_subscription_line(line)]
    if lines:
        return all(int(line.get("amount") or 0) == 0 for line in lines)
    return int(inv.get("subtotal") or 0) == 0


def decline_from_invoice(inv: dict) -> tuple[str, str]:
    """(failure code, decline code) when the payload carries them: an embedded charge (older shape),
    an expanded PaymentIntent's last_payment_error, or expanded invoice payments."""
    candidates: list[dict] = []
    charge = inv.get("charge")
    if isinstance(charge, dict):
        candidates.append({"code": charge.get("failure_code")})
    pi = inv.get("payment_intent")
    if isinstance(pi, dict) and pi.get("last_payment_error"):
        candidates.append(pi["last_payment_error"])
    for payment in ((inv.get("payments") or {}).get("data") or []):
        pi = (payment.get("payment") or {}).get("payment_intent")
        if isinstance(pi, dict) and pi.get("last_payment_error"):
            candidates.append(pi["last_payment_error"])
    if inv.get("last_payment_error"):
        candidates.append(inv["last_payment_error"])
    for err in reversed(candidates):
        code, decline = err.get("code") or "", err.get("decline_code") or ""
        if code or decline:
            return str(code), str(decline)
    return "", ""


def _amount_due(inv: dict) -> int:
    """What the invoice asks for: `amount_due`, which may well be 0 (a balance or a coupon paid it);
    `total` only when Stripe left `amount_due` out."""
    for key in ("amount_due", "total"):
        if inv.get(key) is not None:
            return int(inv[key])
    return 0


def _invoice_common(event: dict, inv: dict) -> dict[str, Any]:
    sub, metadata = _invoice_subscription(inv)
    start, end = _invoice_period(inv)
    return dict(
        processor=PROCESSOR, invoice_ref=str(inv["id"]), subscription_ref=sub,
        customer_ref=id_of(inv.get("customer")), membership_ref=str(metadata.get("membership_ref") or ""),
        amount_cents=_amount_due(inv),
        currency=str(inv.get("currency") or "usd").lower(), attempt_count=int(inv.get("attempt_count") or 0),
        period_start=start, period_end=end, created=int(inv.get("created") or 0),
        event_created=int(event.get("created") or 0), event_ref=str(event.get("id") or ""),
        billing_reason=str(inv.get("billing_reason") or ""),
    )


def _subscription_fact(event: dict, sub: dict) -> SubscriptionChanged:
    items = (sub.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = item.get("price") or item.get("plan") or sub.get("plan") or {}
    amount = price.get("unit_amount", price.get("amount")) if isinstance(price, dict) else None
    # Current API: the period is on the item; older: on the subscription.
    start = item.get("current_period_start") or sub.get("current_period_start")
    end = item.get("current_period_end") or sub.get("current_period_end")
    status = str(sub.get("status") or "")
    # `cancel_at`: the date Stripe will end the subscription (a date set at the Dashboard, or the
    # period end that `cancel_at_period_end` sets). On or before the current period's end, there is
    # no renewal: the same as ending at the period end (as Square's `canceled_date` is carried).
    period_end, ends = moment_of(end), moment_of(sub.get("cancel_at"))
    ending = bool(sub.get("cancel_at_period_end")) or (
        ends is not None and period_end is not None and ends <= period_end)
    return SubscriptionChanged(
        processor=PROCESSOR, subscription_ref=str(sub["id"]), customer_ref=id_of(sub.get("customer")),
        membership_ref=str((sub.get("metadata") or {}).get("membership_ref") or ""), status=status,
        price_ref=id_of(price), amount_cents=int(amount) if amount is not None else None,
        cancel_at_period_end=ending,
        collection_paused=bool(sub.get("pause_collection")), current_period_start=moment_of(start),
        current_period_end=period_end, event_created=int(event.get("created") or 0),
        deleted=event.get("type") == "customer.subscription.deleted", event_ref=str(event.get("id") or ""),
        latest_invoice_ref=id_of(sub.get("latest_invoice")),
    )


def parse_event(event: dict) -> InboundFact:
    """A verified Stripe event → the fact it states (or IgnoredEvent)."""
    etype = str(event.get("type") or "")
    obj = ((event.get("data") or {}).get("object")) or {}
    envelope = dict(event_ref=str(event.get("id") or ""), event_type=etype, created=int(event.get("created") or 0))
    if etype in INVOICE_PAID | INVOICE_FAILED | INVOICE_ACTION | set(INVOICE_FORGIVEN):
        common = _invoice_common(event, obj)
        if not common["subscription_ref"] and not common["membership_ref"]:
            return InboundFact(fact=IgnoredEvent("invoice of no subscription"), **envelope)
        if etype in INVOICE_FORGIVEN:
            return InboundFact(fact=_forgiven_fact(event, obj, common), **envelope)
        if etype in INVOICE_PAID:
            if obj.get("status") != "paid":
                return InboundFact(fact=IgnoredEvent(f"invoice status is {obj.get('status')}"), **envelope)
            paid_at = moment_of((obj.get("status_transitions") or {}).get("paid_at"))
            return InboundFact(fact=ChargeSucceeded(amount_paid_cents=int(obj.get("amount_paid") or 0),
                                                    paid_at=paid_at, trial=_starts_trial(obj), **common),
                               **envelope)
        next_attempt = moment_of(obj.get("next_payment_attempt"))
        if etype in INVOICE_ACTION:
            return InboundFact(fact=ChargeActionRequired(next_payment_attempt=next_attempt, **common), **envelope)
        failure_code, decline_code = decline_from_invoice(obj)
        return InboundFact(fact=ChargeFailed(hard=is_hard_decline(failure_code, decline_code),
                                             failure_code=failure_code, decline_code=decline_code,
                                             next_payment_attempt=next_attempt, **common), **envelope)
    if etype in SUBSCRIPTION:
        return InboundFact(fact=_subscription_fact(event, obj), **envelope)
    if etype in CHECKOUT:
        if obj.get("mode") == "subscription" and (obj.get("metadata") or {}).get("join_ref"):
            return InboundFact(fact=_join_fact(event, obj), **envelope)
        if etype != CHECKOUT_COMPLETED or obj.get("mode") != "setup" or not obj.get("setup_intent"):
            # a subscription started on the hosted page arrives as customer.subscription.* / invoice.*
            return InboundFact(fact=IgnoredEvent(f"checkout in {obj.get('mode')} mode needs nothing more"),
                               **envelope)
        return InboundFact(fact=CardSaved(
            processor=PROCESSOR, customer_ref=id_of(obj.get("customer")), setup_ref=id_of(obj.get("setup_intent")),
            membership_ref=str((obj.get("metadata") or {}).get("membership_ref")
                               or obj.get("client_reference_id") or ""),
            event_created=int(event.get("created") or 0)), **envelope)
    if etype in CUSTOMER:
        return InboundFact(fact=_default_card_fact(event, obj), **envelope)
    if etype in PAYMENT_REVERSED:
        return InboundFact(fact=reversal_fact(event, obj), **envelope)
    return InboundFact(fact=IgnoredEvent(f"{etype} is not acted on"), **envelope)


# `how` of an invoice Stripe marked uncollectible itself, at the end of its retries.
MARKED_BY_STRIPE = "marked uncollectible by Stripe after its last retry"


def _forgiven_fact(event: dict, inv: dict, common: dict) -> InvoiceForgiven | IgnoredEvent:
    """`invoice.voided` (status `void`: forgiven) or `invoice.marked_uncollectible` (status
    `uncollectible`: written off), dated by the invoice's own `status_transitions`.

    Who marked it uncollectible: the practice (the Dashboard or the API: a request) or Stripe itself,
    its failed-payment settings acting after the last retry. The invoice cannot tell them apart at the
    pinned version (`auto_advance` is false and `collection_method` unchanged either way; the
    subscription's settings say nothing of who acted); the event can: `request.id` is "ID of the API
    request that caused the event. If null, the event was automatic (e.g., Stripe's automatic
    subscription handling)". So an event with no request is Stripe's own marking, and says so (`how`),
    for the timeline and the dunning case. Both end the case written off: either way the invoice will
    not be collected."""
    etype = str(event.get("type") or "")
    status = INVOICE_FORGIVEN[etype]
    if inv.get("status") != status:
        return IgnoredEvent(f"{etype} of an invoice whose status is {inv.get('status')}")
    transitions = inv.get("status_transitions") or {}
    at = moment_of(transitions.get("voided_at" if status == "void" else "marked_uncollectible_at"))
    automatic = isinstance(event.get("request"), dict) and not event["request"].get("id")
    how = "voided" if status == "void" else MARKED_BY_STRIPE if automatic else "marked uncollectible"
    return InvoiceForgiven(written_off=status == "uncollectible", how=how,
                           forgiven_at=at or moment_of(common["event_created"]), **common)


def _join_fact(event: dict, session: dict) -> CheckoutCompleted | IgnoredEvent:
    """A join paid on the hosted page: a complete session whose payment is settled. A card payment is
    by `checkout.session.completed`; a delayed method (a bank debit, offered when the practice enables
    one in its Stripe Dashboard: the join's session leaves the methods to the Dashboard) completes the
    session "unpaid" and settles days later with `checkout.session.async_payment_succeeded`, the
    session then "paid". "no_payment_required" (a free trial) enrolls at once; its first paid cycle
    seeds the balance. Until then, and after `async_payment_failed`, nothing is enrolled; the join is
    kept while its payment settles (`join_retention`)."""
    if event.get("type") == CHECKOUT_NOT_SETTLED:
        return IgnoredEvent("join checkout's delayed payment failed: nothing enrolled")
    if session.get("status") not in (None, "complete") or \
            session.get("payment_status") not in ("paid", "no_payment_required"):
        return IgnoredEvent(f"join checkout {session.get('status')}, payment {session.get('payment_status')}"
                            + (": waiting for the delayed payment to settle"
                               if session.get("payment_status") == "unpaid" else ""))
    if not id_of(session.get("subscription")):
        return IgnoredEvent("join checkout without a subscription")
    return CheckoutCompleted(
        processor=PROCESSOR, checkout_ref=str(session.get("id") or ""),
        join_ref=str((session.get("metadata") or {}).get("join_ref") or ""), customer_ref=id_of(session.get("customer")),
        subscription_ref=id_of(session.get("subscription")), event_created=int(event.get("created") or 0))


def _default_card_fact(event: dict, customer: dict) -> DefaultCardChanged | IgnoredEvent:
    """`customer.updated` states a new default card only when `previous_attributes` shows the
    invoice default payment method changed (to a card, not to none)."""
    previous = ((event.get("data") or {}).get("previous_attributes") or {}).get("invoice_settings")
    if not isinstance(previous, dict) or "default_payment_method" not in previous:
        return IgnoredEvent("customer updated; default card unchanged")
    new = id_of((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if not new or new == id_of(previous.get("default_payment_method")):
        return IgnoredEvent("customer updated; no new default card")
    return DefaultCardChanged(processor=PROCESSOR, customer_ref=id_of(customer.get("id")), payment_method_ref=new,
                              event_created=int(event.get("created") or 0))


def is_handled(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES
