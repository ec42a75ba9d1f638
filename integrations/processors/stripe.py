"""The Stripe API client: the calls this system makes to Stripe, with the official SDK.

Outbound: `StripeProcessor` (prices, customers, subscriptions, invoices, Checkout and the Billing
Portal) — every call carries our idempotency key, and creates look first; `translate_error()` turns
the SDK's exceptions into our own. Inbound, what a webhook leaves out is read from Stripe in
`stripe_reads` (a failed invoice's decline code, a dispute's charge); the webhook itself is read in
`stripe_events`, without calling Stripe.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings

from .base import (
    ChargeSucceeded,
    JoinCheckout,
    PaymentDeclined,
    ProcessorRejected,
    ProcessorUnavailable,
    SubscriptionRef,
    is_hard_decline,
)
from .stripe_events import PROCESSOR, decline_from_invoice, id_of, parse_event

logger = logging.getLogger(__name__)


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


def _replayed_failure(exc: Exception) -> bool:
    """A 5xx that Stripe saved for this idempotency key earlier and now replays (`Idempotent-Replayed`)."""
    status = getattr(exc, "http_status", None) or 0
    headers = getattr(exc, "headers", None) or {}
    replayed = next((str(v) for k, v in dict(headers).items() if str(k).lower() == "idempotent-replayed"), "")
    return status >= 500 and replayed.lower() == "true"


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


def as_dict(obj) -> dict:
    """A StripeObject (not a dict in SDK 16) → a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.to_dict() if hasattr(obj, "to_dict") else json.loads(str(obj))


def item_and_price(sub: dict) -> tuple[str, dict]:
    """(item id, price) of a subscription's first item (the price as a dict even when only its id is given)."""
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

    # How many fresh keys a write may take after Stripe replays a failure saved under its key (below).
    FRESH_KEYS_AFTER_5XX = 10

    def _call(self, fn, *args, **kwargs):
        """One call to Stripe; its errors as ours. A write whose key Stripe answers with the 5xx it
        saved for that key is made again at once under the next key derived from ours.

        Stripe: "idempotency works by saving the resulting status code and body of the first request
        made for any given idempotency key, regardless of whether it succeeds or fails. Subsequent
        requests with the same key return the same result, including 500 errors" (and marks such an
        answer `Idempotent-Replayed: true`). Retried under the same key, a write that once met a
        Stripe 500 would meet it again for 24 hours: every outbox retry of a tier change, a pause or a
        cancellation failing until its delivery is dead-lettered. Every write here reads Stripe's state
        before it writes (a subscription found by its metadata, a price compared, a pause or an end
        seen, an invoice's status), so the write made again does what is still to do. A 5xx that is
        not a replay stays ProcessorUnavailable under the same key: the next attempt asks Stripe again
        and, if that 5xx was saved, moves on to the next key then. 429 and 409 (`idempotency_key_in_use`)
        are not saved by Stripe: retried under the same key. A 500's result is indeterminate, so the
        replayed one must be an earlier attempt's, seen by the state read before this write: no SDK
        retries (a 500 resent and replayed would be made again at once: a second subscription behind a
        500); only a request that got no answer is sent again under the same key, and then waits."""
        options = args[-1] if args and isinstance(args[-1], dict) and "idempotency_key" in args[-1] else None
        if options is not None:
            options = {**options, "max_network_retries": 0}
            args = (*args[:-1], options)
        retries = settings.STRIPE_MAX_NETWORK_RETRIES
        base, fresh, unanswered = (options["idempotency_key"] if options else ""), 0, retries if options else 0
        while True:
            try:
                return as_dict(fn(*args, **kwargs))
            except stripe.APIConnectionError as exc:
                if unanswered <= 0 or not getattr(exc, "should_retry", False):
                    raise translate_error(exc) from None
                unanswered -= 1                     # no answer: the same key again (Stripe replays any it saved)
            except stripe.StripeError as exc:
                resent = unanswered < retries            # the replay may answer this call's own first send
                if options is None or not _replayed_failure(exc) or fresh == self.FRESH_KEYS_AFTER_5XX or resent:
                    raise translate_error(exc) from None
                logger.warning("Stripe replayed a saved %s for a write; made again under a fresh key",
                               getattr(exc, "http_status", None))
                fresh, suffix = fresh + 1, f":after-5xx-{fresh + 1}"
                args = (*args[:-1], {**options, "idempotency_key": base[:255 - len(suffix)] + suffix})

    @staticmethod
    def _opts(idempotency_key: str, step: str) -> dict:
        return {"idempotency_key": f"{idempotency_key}:{step}"[:255]}

    # catalog -------------------------------------------------------------------------------------
    def ensure_price(self, *, tier_ref: str, plan_id: str, product_name: str, amount_cents: int, currency: str,
                     interval: str, idempotency_key: str) -> str:
        try:
            existing = as_dict(self.client.v1.plans.retrieve(plan_id))
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
        return id_of(pm) or id_of(customer.get("default_source"))

    # subscriptions -------------------------------------------------------------------------------
    def _ref(self, sub: dict, *, created: bool = False) -> SubscriptionRef:
        _, price = item_and_price(sub)
        return SubscriptionRef(customer_ref=id_of(sub.get("customer")), subscription_ref=str(sub.get("id") or ""),
                               status=str(sub.get("status") or ""), price_ref=id_of(price), created=created,
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
        item_id, price = item_and_price(sub)
        if id_of(price) == price_ref:
            return self._ref(sub)                       # already there (a retry, or a change made twice)
        params: dict[str, Any] = {"items": [{"id": item_id, settings.STRIPE_ITEM_PRICE_PARAM: price_ref}]}
        behavior = settings.STRIPE_PRORATION_BEHAVIOR if proration_behavior is None else proration_behavior
        if behavior:
            params["proration_behavior"] = behavior
        updated = self._call(self.client.v1.subscriptions.update, subscription_ref, params,
                             self._opts(idempotency_key, f"price:{price_ref}"))
        if id_of(item_and_price(updated)[1]) != price_ref:
            raise ProcessorRejected(f"the processor kept {id_of(item_and_price(updated)[1])} instead of {price_ref}")
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
        (Stripe raises a CardError; some compatible servers answer 200 with the invoice still open); one
        the practice voided or wrote off meanwhile (a retry already on its way) → ProcessorRejected,
        nothing charged (Stripe would take payment of an uncollectible invoice)."""
        invoice = self._call(self.client.v1.invoices.retrieve, invoice_ref)
        if invoice.get("status") == "paid":
            return invoice
        if invoice.get("status") in ("void", "uncollectible"):   # forgiven or written off since: never charged
            raise ProcessorRejected(f"invoice {invoice_ref} is {invoice.get('status')}: no payment expected")
        invoice = self._call(self.client.v1.invoices.pay, invoice_ref, None, self._opts(idempotency_key, "pay"))
        if invoice.get("status") != "paid":
            code, decline = decline_from_invoice(invoice)
            raise PaymentDeclined(hard=is_hard_decline(code, decline), failure_code=code or "card_declined",
                                  decline_code=decline)
        return invoice

    def invoice_decline(self, *, invoice: dict) -> tuple[str, str]:
        """(error code, decline code) of the invoice's latest failed payment, read from the processor:
        the PaymentIntent's `last_payment_error` (`code`, `decline_code`), else its Charge's
        `outcome.reason` and `failure_code`. Current API: the invoice's payments
        (`/v1/invoice_payments`, PaymentIntent expanded); older API versions and compatible servers
        name the PaymentIntent (or the Charge) on the invoice itself. ("", "") when none is known."""
        intent, charge_ref = invoice.get("payment_intent"), id_of(invoice.get("charge"))
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
                intent, charge_ref = details.get("payment_intent"), id_of(details.get("charge"))
                if intent or charge_ref:
                    break
        code = decline = ""
        if intent:
            if not isinstance(intent, dict):
                intent = self._call(self.client.v1.payment_intents.retrieve, str(intent))
            error = intent.get("last_payment_error") or {}
            code, decline = str(error.get("code") or ""), str(error.get("decline_code") or "")
            charge_ref = charge_ref or id_of(error.get("charge")) or id_of(intent.get("latest_charge"))
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
        """A Billing Portal session limited to replacing the card (`card_link_portal`); it becomes the
        default for invoices. A session lives for minutes, so our messages link to us and we open one
        per click."""
        from .card_link_portal import card_update_session_url

        return card_update_session_url(self, customer_id=customer_id, return_url=return_url)

    def use_saved_card(self, *, customer_ref: str, setup_ref: str, subscription_ref: str,
                       idempotency_key: str) -> str:
        """Make the card saved by a completed setup the default for the customer and subscription."""
        setup = self._call(self.client.v1.setup_intents.retrieve, setup_ref)
        pm = id_of(setup.get("payment_method"))
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

    def join_checkout(self, *, join_ref: str, price_ref: str, email: str, success_url: str, cancel_url: str,
                      expires_at: datetime, idempotency_key: str) -> JoinCheckout:
        """A Checkout page in subscription mode for someone joining online: Stripe makes the customer
        (prefilled with the email) and starts the subscription; our join's opaque id rides in the
        session's `client_reference_id` and metadata and in the subscription's metadata. Nothing else
        about the person is sent."""
        metadata = {"join_ref": join_ref}
        session = self._call(self.client.v1.checkout.sessions.create, {
            "mode": "subscription", "line_items": [{"price": price_ref, "quantity": 1}],
            "customer_email": email, "client_reference_id": join_ref, "metadata": metadata,
            "subscription_data": {"metadata": metadata}, "expires_at": int(expires_at.timestamp()),
            "success_url": success_url, "cancel_url": cancel_url,
        }, self._opts(idempotency_key, "join-checkout"))
        return JoinCheckout(checkout_ref=str(session["id"]), url=str(session["url"]))
