"""The Stripe adapter: the only module that uses the `stripe` SDK.

Inbound: `verify_and_parse()` checks a webhook's `Stripe-Signature` and `parse_event()` turns a
Stripe event (current API shape, `parent.subscription_details`, and the older shape with a top-level
`subscription`/`charge`) into a normalized fact. Outbound: `StripeProcessor` (customers,
subscriptions, Checkout) — every call carries our idempotency key, and creates look first.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from datetime import datetime, timezone as dt_timezone
from typing import Any

import stripe
from django.conf import settings

from .base import (
    CardSaved,
    ChargeActionRequired,
    ChargeFailed,
    ChargeSucceeded,
    DefaultCardChanged,
    IgnoredEvent,
    InboundFact,
    PaymentDeclined,
    ProcessorRejected,
    ProcessorUnavailable,
    SubscriptionChanged,
    SubscriptionRef,
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
CHECKOUT = {"checkout.session.completed"}
CUSTOMER = {"customer.updated"}     # a new default card (the Billing Portal's card update)
HANDLED_EVENT_TYPES = frozenset(INVOICE_PAID | INVOICE_FAILED | INVOICE_ACTION | SUBSCRIPTION | CHECKOUT | CUSTOMER)


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
            return _ts(period["start"]), _ts(period["end"])
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
                                                    paid_at=paid_at, trial=_starts_trial(obj), **common),
                               **envelope)
        next_attempt = _ts(obj.get("next_payment_attempt"))
        if etype in INVOICE_ACTION:
            return InboundFact(fact=ChargeActionRequired(next_payment_attempt=next_attempt, **common), **envelope)
        failure_code, decline_code = _decline_from_invoice(obj)
        return InboundFact(fact=ChargeFailed(hard=is_hard_decline(failure_code, decline_code),
                                             failure_code=failure_code, decline_code=decline_code,
                                             next_payment_attempt=next_attempt, **common), **envelope)
    if etype in SUBSCRIPTION:
        return InboundFact(fact=_subscription_fact(event, obj), **envelope)
    if etype in CHECKOUT:
        if obj.get("mode") != "setup" or not obj.get("setup_intent"):
            # a subscription started on the hosted page arrives as customer.subscription.* / invoice.*
            return InboundFact(fact=IgnoredEvent(f"checkout in {obj.get('mode')} mode needs nothing more"),
                               **envelope)
        return InboundFact(fact=CardSaved(
            processor=PROCESSOR, customer_ref=_id(obj.get("customer")), setup_ref=_id(obj.get("setup_intent")),
            membership_ref=str((obj.get("metadata") or {}).get("membership_ref") or obj.get("client_reference_id") or ""),
            event_created=int(event.get("created") or 0)), **envelope)
    if etype in CUSTOMER:
        return InboundFact(fact=_default_card_fact(event, obj), **envelope)
    return InboundFact(fact=IgnoredEvent(f"{etype} is not acted on"), **envelope)


def _default_card_fact(event: dict, customer: dict) -> DefaultCardChanged | IgnoredEvent:
    """`customer.updated` states a new default card only when `previous_attributes` shows the
    invoice default payment method changed (to a card, not to none)."""
    previous = ((event.get("data") or {}).get("previous_attributes") or {}).get("invoice_settings")
    if not isinstance(previous, dict) or "default_payment_method" not in previous:
        return IgnoredEvent("customer updated; default card unchanged")
    new = _id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if not new or new == _id(previous.get("default_payment_method")):
        return IgnoredEvent("customer updated; no new default card")
    return DefaultCardChanged(processor=PROCESSOR, customer_ref=_id(customer.get("id")), payment_method_ref=new,
                              event_created=int(event.get("created") or 0))


def is_handled(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES


def read_event(event: dict, *, processor: "StripeProcessor | None" = None) -> InboundFact:
    """`parse_event`, completed with what the event leaves out and the processor knows: a current-shape
    `invoice.payment_failed` carries no decline code (the invoice lost its `charge` and
    `payment_intent` in API 2025-03-31), so a stolen card would look like a soft decline. The codes
    are then read from the invoice's PaymentIntent (`last_payment_error`) or its Charge (`outcome`,
    `failure_code`). Raises ProcessorUnavailable (the inbox retries the event later); a refused read
    leaves the failure without a code (soft), logged."""
    return complete_event(event, parse_event(event), processor=processor)


def complete_event(event: dict, parsed: InboundFact, *, processor: "StripeProcessor | None" = None) -> InboundFact:
    """The reads `read_event` adds to an already parsed event (none for most: only a failure that
    carries no decline code asks the processor)."""
    fact = parsed.fact
    if not isinstance(fact, ChargeFailed) or fact.failure_code or fact.decline_code:
        return parsed
    invoice = (event.get("data") or {}).get("object") or {}
    processor = processor or StripeProcessor.from_settings()
    try:
        code, decline = processor.invoice_decline(invoice=invoice)
    except ProcessorRejected as exc:
        logger.warning("decline code of invoice %s not readable: %s", fact.invoice_ref, exc)
        return parsed
    if not (code or decline):
        return parsed
    fact = dataclasses.replace(fact, failure_code=code, decline_code=decline, hard=is_hard_decline(code, decline))
    return dataclasses.replace(parsed, fact=fact)


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
    local Stripe-compatible server in tests). One per process and settings: building one costs an
    SSL context (~5 ms), which a worker reading many declines would pay per event."""
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_VERSION, settings.STRIPE_MAX_NETWORK_RETRIES,
                   settings.STRIPE_API_BASE or "")


@functools.lru_cache(maxsize=4)
def _client(secret_key: str, api_version: str, retries: int, api_base: str) -> "stripe.StripeClient":
    kwargs: dict[str, Any] = {"stripe_version": api_version, "max_network_retries": retries}
    if api_base:
        kwargs["base_addresses"] = {"api": api_base}
    return stripe.StripeClient(secret_key, **kwargs)


# --- outbound -------------------------------------------------------------------------------------

ENDED = ("canceled", "incomplete_expired")


def _plain(obj) -> dict:
    """A StripeObject (not a dict in SDK 16) → a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.to_dict() if hasattr(obj, "to_dict") else json.loads(str(obj))


def _item_price(sub: dict) -> tuple[str, dict]:
    items = (sub.get("items") or {}).get("data") or []
    item = items[0] if items else {}
    price = item.get("price") or item.get("plan") or sub.get("plan") or {}
    return (str(item.get("id") or ""), price if isinstance(price, dict) else {"id": price})


class StripeProcessor:
    """Outbound calls to Stripe. Each takes our idempotency key (Stripe replays the first answer for
    24 h) and also checks before it creates, so a retry after the key expired — or against a
    Stripe-compatible server that ignores keys — still makes one customer, one subscription.

    Catalog: a tier is a Stripe *plan* with our own deterministic id (`STRIPE_PLAN_ID_PREFIX` +
    tier pk): plans can be found by id before creating, and Stripe accepts a plan id wherever a
    price id is expected. Subscription items name it with `STRIPE_ITEM_PRICE_PARAM` ("price" for
    Stripe; "plan" for local servers that only model plans). Every price change is read back: a
    server that silently ignored it raises instead of reporting success."""

    name = PROCESSOR

    def __init__(self, client: "stripe.StripeClient"):
        self.client = client

    @classmethod
    def from_settings(cls) -> "StripeProcessor":
        return cls(make_client())

    def _call(self, fn, *args, **kwargs):
        try:
            return _plain(fn(*args, **kwargs))
        except stripe.StripeError as exc:
            raise translate_error(exc) from None

    @staticmethod
    def _opts(idempotency_key: str, step: str) -> dict:
        return {"idempotency_key": f"{idempotency_key}:{step}"[:255]}

    # catalog -------------------------------------------------------------------------------------
    def ensure_price(self, *, tier_ref: str, plan_id: str, product_name: str, amount_cents: int, currency: str,
                     interval: str, idempotency_key: str) -> str:
        try:
            existing = _plain(self.client.v1.plans.retrieve(plan_id))
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "http_status", None) != 404:
                raise translate_error(exc) from None
            existing = None
        except stripe.StripeError as exc:
            raise translate_error(exc) from None
        if existing:
            if int(existing.get("amount") or 0) != amount_cents or str(existing.get("currency")) != currency:
                raise ProcessorRejected(f"plan {plan_id} exists with another amount; tiers are versioned")
            return plan_id
        product = self._call(self.client.v1.products.create,
                             {"name": product_name, "metadata": {"tier_ref": tier_ref}},
                             self._opts(idempotency_key, "product"))
        self._call(self.client.v1.plans.create,
                   {"id": plan_id, "product": product["id"], "amount": amount_cents, "currency": currency,
                    "interval": interval, "metadata": {"tier_ref": tier_ref}},
                   self._opts(idempotency_key, "plan"))
        return plan_id

    # customers -----------------------------------------------------------------------------------
    def ensure_customer(self, *, member_ref: str, existing_ref: str, idempotency_key: str) -> str:
        if existing_ref:
            return existing_ref
        customer = self._call(self.client.v1.customers.create, {"metadata": {"member_ref": member_ref}},
                              self._opts(idempotency_key, "customer"))
        return str(customer["id"])

    def default_payment_method(self, *, customer_ref: str) -> str:
        customer = self._call(self.client.v1.customers.retrieve, customer_ref)
        pm = (customer.get("invoice_settings") or {}).get("default_payment_method")
        return _id(pm) or _id(customer.get("default_source"))

    # subscriptions -------------------------------------------------------------------------------
    def _ref(self, sub: dict, *, created: bool = False) -> SubscriptionRef:
        _, price = _item_price(sub)
        return SubscriptionRef(customer_ref=_id(sub.get("customer")), subscription_ref=str(sub.get("id") or ""),
                               status=str(sub.get("status") or ""), price_ref=_id(price), created=created,
                               extra={"collection_paused": bool(sub.get("pause_collection")),
                                      "amount_cents": price.get("unit_amount", price.get("amount"))})

    def find_subscription(self, *, customer_ref: str, membership_ref: str) -> dict | None:
        """Our live subscription for this membership at this customer, found by its metadata."""
        page = self._call(self.client.v1.subscriptions.list,
                          {"customer": customer_ref, "status": "all", "limit": 100})
        for sub in page.get("data") or []:
            if (sub.get("metadata") or {}).get("membership_ref") == membership_ref and sub.get("status") not in ENDED:
                return sub
        return None

    def ensure_subscription(self, *, customer_ref: str, membership_ref: str, price_ref: str, metadata: dict,
                            idempotency_key: str) -> SubscriptionRef:
        found = self.find_subscription(customer_ref=customer_ref, membership_ref=membership_ref)
        if found is not None:
            return self._ref(found)
        item_param = settings.STRIPE_ITEM_PRICE_PARAM
        sub = self._call(self.client.v1.subscriptions.create,
                         {"customer": customer_ref, "items": [{item_param: price_ref, "quantity": 1}],
                          "metadata": {**metadata, "membership_ref": membership_ref}},
                         self._opts(idempotency_key, "subscription"))
        return self._ref(sub, created=True)

    def retrieve_subscription(self, *, subscription_ref: str) -> SubscriptionRef:
        return self._ref(self._call(self.client.v1.subscriptions.retrieve, subscription_ref))

    def change_price(self, *, subscription_ref: str, price_ref: str, idempotency_key: str,
                     proration_behavior: str | None = None) -> SubscriptionRef:
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription_ref)
        if sub.get("status") in ENDED:
            raise ProcessorRejected(f"subscription {subscription_ref} has ended")
        item_id, price = _item_price(sub)
        if _id(price) == price_ref:
            return self._ref(sub)                       # already there (a retry, or a change made twice)
        params: dict[str, Any] = {"items": [{"id": item_id, settings.STRIPE_ITEM_PRICE_PARAM: price_ref}]}
        behavior = settings.STRIPE_PRORATION_BEHAVIOR if proration_behavior is None else proration_behavior
        if behavior:
            params["proration_behavior"] = behavior
        updated = self._call(self.client.v1.subscriptions.update, subscription_ref, params,
                             self._opts(idempotency_key, f"price:{price_ref}"))
        if _id(_item_price(updated)[1]) != price_ref:
            raise ProcessorRejected(f"the processor kept {_id(_item_price(updated)[1])} instead of {price_ref}")
        return self._ref(updated)

    def pause_collection(self, *, subscription_ref: str, resumes_at: datetime | None,
                         idempotency_key: str) -> SubscriptionRef:
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription_ref)
        if sub.get("pause_collection"):
            return self._ref(sub)
        pause: dict[str, Any] = {"behavior": "void"}
        if resumes_at is not None:
            pause["resumes_at"] = int(resumes_at.timestamp())
        return self._ref(self._call(self.client.v1.subscriptions.update, subscription_ref,
                                    {"pause_collection": pause}, self._opts(idempotency_key, "pause")))

    def resume_collection(self, *, subscription_ref: str, idempotency_key: str) -> SubscriptionRef:
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription_ref)
        if not sub.get("pause_collection"):
            return self._ref(sub)
        return self._ref(self._call(self.client.v1.subscriptions.update, subscription_ref,
                                    {"pause_collection": ""}, self._opts(idempotency_key, "resume")))

    def cancel_subscription(self, *, subscription_ref: str, idempotency_key: str) -> SubscriptionRef:
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription_ref)
        if sub.get("status") in ENDED:
            return self._ref(sub)
        return self._ref(self._call(self.client.v1.subscriptions.cancel, subscription_ref, None,
                                    self._opts(idempotency_key, "cancel")))

    # payments ------------------------------------------------------------------------------------
    def retry_invoice(self, *, invoice_ref: str, idempotency_key: str) -> dict:
        """Try to collect an open invoice now (dunning). Paid → the invoice; declined → PaymentDeclined
        (Stripe raises a CardError; some compatible servers answer 200 with the invoice still open)."""
        invoice = self._call(self.client.v1.invoices.retrieve, invoice_ref)
        if invoice.get("status") == "paid":
            return invoice
        invoice = self._call(self.client.v1.invoices.pay, invoice_ref, None, self._opts(idempotency_key, "pay"))
        if invoice.get("status") != "paid":
            code, decline = _decline_from_invoice(invoice)
            raise PaymentDeclined(hard=is_hard_decline(code, decline), failure_code=code or "card_declined",
                                  decline_code=decline)
        return invoice

    def invoice_decline(self, *, invoice: dict) -> tuple[str, str]:
        """(error code, decline code) of the invoice's latest failed payment, read from the processor:
        the PaymentIntent's `last_payment_error` (`code`, `decline_code`), else its Charge's
        `outcome.reason` and `failure_code`. Current API: the invoice's payments
        (`/v1/invoice_payments`, PaymentIntent expanded); older API versions and compatible servers
        name the PaymentIntent (or the Charge) on the invoice itself. ("", "") when none is known."""
        intent, charge_ref = invoice.get("payment_intent"), _id(invoice.get("charge"))
        if not intent and not charge_ref:
            payments = self._call(self.client.v1.invoice_payments.list,
                                  {"invoice": str(invoice.get("id") or ""), "limit": 10,
                                   "expand": ["data.payment.payment_intent"]})
            for payment in sorted(payments.get("data") or [], key=lambda p: (bool(p.get("is_default")),
                                                                            int(p.get("created") or 0)),
                                  reverse=True):
                if payment.get("status") == "paid":
                    continue
                details = payment.get("payment") or {}
                intent, charge_ref = details.get("payment_intent"), _id(details.get("charge"))
                if intent or charge_ref:
                    break
        code = decline = ""
        if intent:
            if not isinstance(intent, dict):
                intent = self._call(self.client.v1.payment_intents.retrieve, str(intent))
            error = intent.get("last_payment_error") or {}
            code, decline = str(error.get("code") or ""), str(error.get("decline_code") or "")
            charge_ref = charge_ref or _id(error.get("charge")) or _id(intent.get("latest_charge"))
        if charge_ref and not decline:
            charge = self._call(self.client.v1.charges.retrieve, charge_ref)
            outcome = charge.get("outcome") or {}
            code = code or str(charge.get("failure_code") or "")
            if outcome.get("type") in ("issuer_declined", "blocked", "invalid"):
                decline = str(outcome.get("reason") or "")
        return code, decline

    # dunning (integrations.processors.dunning.DunningProcessor) -----------------------------------
    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str):
        """A dunning retry: paid (with the paid invoice as a ChargeSucceeded fact) or failed(decline)."""
        import time

        from .dunning import RetryOutcome

        try:
            invoice = self.retry_invoice(invoice_ref=invoice_id, idempotency_key=idempotency_key)
        except PaymentDeclined as exc:
            return RetryOutcome.failed(exc.decline_code or exc.failure_code)
        fact = parse_event({"id": f"dunning-retry:{idempotency_key}", "type": "invoice.paid",
                            "created": int(time.time()), "data": {"object": invoice}}).fact
        return RetryOutcome.succeeded(charge=fact if isinstance(fact, ChargeSucceeded) else None)

    def card_update_url(self, *, customer_id: str, return_url: str) -> str:
        """The Billing Portal: the member replaces the card and it becomes the default for invoices.
        A session lives for minutes, so our messages link to us and we open one per click."""
        session = self._call(self.client.v1.billing_portal.sessions.create,
                             {"customer": customer_id, "return_url": return_url})
        return str(session["url"])

    def use_saved_card(self, *, customer_ref: str, setup_ref: str, subscription_ref: str,
                       idempotency_key: str) -> str:
        """Make the card saved by a completed setup the default for the customer and subscription."""
        setup = self._call(self.client.v1.setup_intents.retrieve, setup_ref)
        pm = _id(setup.get("payment_method"))
        if not pm:
            raise ProcessorRejected(f"setup {setup_ref} has no payment method")
        self._call(self.client.v1.customers.update, customer_ref,
                   {"invoice_settings": {"default_payment_method": pm}}, self._opts(idempotency_key, "customer-pm"))
        if subscription_ref:
            self._call(self.client.v1.subscriptions.update, subscription_ref, {"default_payment_method": pm},
                       self._opts(idempotency_key, "subscription-pm"))
        return pm

    # hosted card entry ---------------------------------------------------------------------------
    def checkout_url(self, *, customer_ref: str, membership_ref: str, price_ref: str | None,
                     success_url: str, cancel_url: str, idempotency_key: str) -> str:
        """A Stripe-hosted Checkout page: `price_ref` given → mode=subscription (the member enters a
        card and the subscription starts); None → mode=setup (a new card for an existing one)."""
        params: dict[str, Any] = {"customer": customer_ref, "success_url": success_url, "cancel_url": cancel_url,
                                  "client_reference_id": membership_ref, "metadata": {"membership_ref": membership_ref}}
        if price_ref:
            params.update(mode="subscription", line_items=[{"price": price_ref, "quantity": 1}],
                          subscription_data={"metadata": {"membership_ref": membership_ref}})
        else:
            params.update(mode="setup", payment_method_types=["card"],
                          setup_intent_data={"metadata": {"membership_ref": membership_ref}})
        session = self._call(self.client.v1.checkout.sessions.create, params,
                             self._opts(idempotency_key, f"checkout:{params['mode']}"))
        return str(session["url"])
