"""The Stripe adapter: the only module that uses the `stripe` SDK.

Inbound: `verify_and_parse()` checks a webhook's `Stripe-Signature` and `parse_event()` turns a
Stripe event (current API shape, `parent.subscription_details`, and the older shape with a top-level
`subscription`/`charge`) into a normalized fact. Outbound: `StripeProcessor` (customers,
subscriptions, Checkout) — every call carries our idempotency key, and creates look first.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone as dt_timezone
from typing import Any

import stripe
from django.conf import settings

from .base import (
    ChargeActionRequired,
    ChargeFailed,
    ChargeSucceeded,
    IgnoredEvent,
    InboundFact,
    PaymentDeclined,
    ProcessorRejected,
    ProcessorUnavailable,
    SubscriptionChanged,
    is_hard_decline,
)

logger = logging.getLogger(__name__)

PROCESSOR = "stripe"
SIGNATURE_TOLERANCE_SECONDS = 300

# The events to enable on the Stripe webhook endpoint (README lists them).
INVOICE_PAID = {"invoice.paid", "invoice.payment_succeeded"}
INVOICE_FAILED = {"invoice.payment_failed"}
INVOICE_ACTION = {"invoice.payment_action_required"}
SUBSCRIPTION = {"customer.subscription.created", "customer.subscription.updated",
                "customer.subscription.deleted", "customer.subscription.paused",
                "customer.subscription.resumed"}
HANDLED_EVENT_TYPES = frozenset(INVOICE_PAID | INVOICE_FAILED | INVOICE_ACTION | SUBSCRIPTION)


class InvalidSignature(Exception):
    pass


# --- inbound --------------------------------------------------------------------------------------

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


def _ts(value) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc)


def _id(value) -> str:
    """An expandable field: an id string, or an embedded object with an id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _invoice_subscription(inv: dict) -> tuple[str, dict]:
    """(subscription id, subscription metadata) from the current shape or the older one."""
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    sub = _id(details.get("subscription")) or _id(inv.get("subscription"))
    metadata = dict(details.get("metadata") or inv.get("subscription_details", {}).get("metadata") or {})
    if not metadata and isinstance(inv.get("subscription"), dict):
        metadata = dict(inv["subscription"].get("metadata") or {})
    for line in (inv.get("lines") or {}).get("data") or []:
        if not sub:
            line_parent = (line.get("parent") or {}).get("subscription_item_details") or {}
            sub = _id(line_parent.get("subscription")) or _id(line.get("subscription"))
        if not metadata and line.get("metadata"):
            metadata = dict(line["metadata"])
    return sub, metadata


def _invoice_period(inv: dict) -> tuple[datetime | None, datetime | None]:
    """The service period: the subscription line's period (Stripe's invoice-level period_start/end is
    the previous period for renewal invoices), else the invoice's."""
    for line in (inv.get("lines") or {}).get("data") or []:
        period = line.get("period") or {}
        if period.get("start") and period.get("end"):
            return _ts(period["start"]), _ts(period["end"])
    return _ts(inv.get("period_start")), _ts(inv.get("period_end"))


def _decline_from_invoice(inv: dict) -> tuple[str, str]:
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


def _invoice_common(event: dict, inv: dict) -> dict[str, Any]:
    sub, metadata = _invoice_subscription(inv)
    start, end = _invoice_period(inv)
    return dict(
        processor=PROCESSOR, invoice_ref=str(inv["id"]), subscription_ref=sub,
        customer_ref=_id(inv.get("customer")), membership_ref=str(metadata.get("membership_ref") or ""),
        amount_cents=int(inv.get("amount_due") or inv.get("total") or 0),
        currency=str(inv.get("currency") or "usd").lower(), attempt_count=int(inv.get("attempt_count") or 0),
        period_start=start, period_end=end, created=int(inv.get("created") or 0),
        event_created=int(event.get("created") or 0), event_ref=str(event.get("id") or ""),
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
    return SubscriptionChanged(
        processor=PROCESSOR, subscription_ref=str(sub["id"]), customer_ref=_id(sub.get("customer")),
        membership_ref=str((sub.get("metadata") or {}).get("membership_ref") or ""), status=status,
        price_ref=_id(price), amount_cents=int(amount) if amount is not None else None,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        collection_paused=bool(sub.get("pause_collection")), current_period_start=_ts(start),
        current_period_end=_ts(end), event_created=int(event.get("created") or 0),
        deleted=event.get("type") == "customer.subscription.deleted", event_ref=str(event.get("id") or ""),
    )


def parse_event(event: dict) -> InboundFact:
    """A verified Stripe event → the fact it states (or IgnoredEvent)."""
    etype = str(event.get("type") or "")
    obj = ((event.get("data") or {}).get("object")) or {}
    envelope = dict(event_ref=str(event.get("id") or ""), event_type=etype, created=int(event.get("created") or 0))
    if etype in INVOICE_PAID | INVOICE_FAILED | INVOICE_ACTION:
        common = _invoice_common(event, obj)
        if not common["subscription_ref"] and not common["membership_ref"]:
            return InboundFact(fact=IgnoredEvent("invoice of no subscription"), **envelope)
        if etype in INVOICE_PAID:
            if obj.get("status") != "paid":
                return InboundFact(fact=IgnoredEvent(f"invoice status is {obj.get('status')}"), **envelope)
            paid_at = _ts((obj.get("status_transitions") or {}).get("paid_at"))
            return InboundFact(fact=ChargeSucceeded(amount_paid_cents=int(obj.get("amount_paid") or 0),
                                                    paid_at=paid_at, **common), **envelope)
        next_attempt = _ts(obj.get("next_payment_attempt"))
        if etype in INVOICE_ACTION:
            return InboundFact(fact=ChargeActionRequired(next_payment_attempt=next_attempt, **common), **envelope)
        failure_code, decline_code = _decline_from_invoice(obj)
        return InboundFact(fact=ChargeFailed(hard=is_hard_decline(failure_code, decline_code),
                                             failure_code=failure_code, decline_code=decline_code,
                                             next_payment_attempt=next_attempt, **common), **envelope)
    if etype in SUBSCRIPTION:
        return InboundFact(fact=_subscription_fact(event, obj), **envelope)
    return InboundFact(fact=IgnoredEvent(f"{etype} is not acted on"), **envelope)


def is_handled(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES


# --- errors ---------------------------------------------------------------------------------------

def translate_error(exc: Exception) -> Exception:
    """A Stripe SDK exception → our own error (never let a vendor exception out of this module)."""
    if isinstance(exc, stripe.CardError):
        err = getattr(exc, "error", None)
        code = getattr(exc, "code", None) or (getattr(err, "code", None) if err else None) or "card_declined"
        decline = (getattr(err, "decline_code", None) if err else None) or ""
        return PaymentDeclined(getattr(exc, "user_message", None) or "The card was declined.",
                               hard=is_hard_decline(code, decline), failure_code=code, decline_code=decline)
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)):
        return ProcessorUnavailable(f"{type(exc).__name__}: processor unreachable or rate-limited")
    if isinstance(exc, stripe.StripeError):
        status = getattr(exc, "http_status", None) or 0
        if status >= 500 or status in (0, 409, 429):
            return ProcessorUnavailable(f"{type(exc).__name__} (HTTP {status})")
        return ProcessorRejected(f"{type(exc).__name__} (HTTP {status}): {getattr(exc, 'user_message', '') or ''}")
    return exc


def make_client() -> "stripe.StripeClient":
    """A StripeClient with the pinned API version; pointed at STRIPE_API_BASE when it is set (a
    local Stripe-compatible server in tests)."""
    kwargs: dict[str, Any] = {"stripe_version": settings.STRIPE_API_VERSION,
                              "max_network_retries": settings.STRIPE_MAX_NETWORK_RETRIES}
    if settings.STRIPE_API_BASE:
        kwargs["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **kwargs)
