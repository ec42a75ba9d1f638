"""Square, the second processor: the outbound calls of the `Processor` protocol (`base.py`) through
the official SDK (`squareup`, `from square import Square`). Webhooks are read in `square_events.py`.

- Catalog: a tier version is a Square subscription plan and one plan variation (its monthly, or
  yearly, price in cents); both are upserted with idempotency keys made from the tier version's own
  ref, so a retry — by the outbox, or after a crash between the two calls — never makes a second one.
- Customer and card: the customer is keyed by our member ref; a card is saved on file from the
  single-use token Square's Web Payments SDK gives the member's browser (the card never reaches us).
- Subscription: created once per membership and plan (key from our ids, and a search of the
  customer's subscriptions first). A plan swap, a pause and a cancellation are Square actions at the
  end of the paid cycle (one pending swap: a newer one replaces it); resume clears a pending pause or
  resumes a paused subscription.
- Errors: Square's answers become our own (`PaymentDeclined`, `ProcessorUnavailable` for 429/5xx
  and the network, `ProcessorRejected` for the rest: an unknown plan or subscription, an expired
  token); the SDK's own retries are off — the outbox retries with its backoff.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings

from .base import PaymentDeclined, ProcessorRejected, ProcessorUnavailable, SubscriptionRef
from .square_events import CADENCE as _CADENCE, PROCESSOR, is_hard_decline, our_status

_LIVE = ("ACTIVE", "PENDING", "PAUSED")
_BASE_URLS = {"sandbox": "https://connect.squareupsandbox.com", "production": "https://connect.squareup.com"}


class NotFound(ProcessorRejected):
    """Square does not know the object asked for (HTTP 404)."""


def translate_error(exc: Exception) -> Exception:
    """A Square SDK or network exception → our own error."""
    from square.core.api_error import ApiError

    if isinstance(exc, httpx.HTTPError):
        return ProcessorUnavailable(f"{type(exc).__name__}: Square unreachable")
    if not isinstance(exc, ApiError):
        return exc
    status = exc.status_code or 0
    errors = [e if isinstance(e, dict) else e.dict() for e in ((exc.body or {}).get("errors") or [])] \
        if isinstance(exc.body, dict) else []
    codes = [str(e.get("code") or "") for e in errors]
    detail = "; ".join(f"{e.get('code')}: {e.get('detail') or ''}".strip() for e in errors) or f"HTTP {status}"
    if any(str(e.get("category")) == "PAYMENT_METHOD_ERROR" for e in errors):
        code = codes[0] if codes else "CARD_DECLINED"
        return PaymentDeclined("The card was declined.", hard=is_hard_decline(code), failure_code=code,
                               decline_code=code)
    if status in (0, 408, 409, 429) or status >= 500:
        return ProcessorUnavailable(f"Square answered {status}: {detail}")
    if status == 401:
        return ProcessorRejected(f"Square refused our access token (HTTP 401: {detail}); renew SQUARE_ACCESS_TOKEN")
    if status == 404:
        return NotFound(f"Square refused the request (HTTP {status}: {detail})")
    return ProcessorRejected(f"Square refused the request (HTTP {status}: {detail})")


def refuse_ended(sub: dict) -> None:
    """A plan change asked of a subscription that bills nothing: ended, or deactivated by Square —
    "the subscription was deactivated" (SubscriptionEventSubscriptionEventType), which Square does to
    one it cannot bill (SubscriptionEventInfoCode: the location is not active or cannot take payments,
    the customer was deleted or has no name or email) and which only ResumeSubscription brings back.
    The reason says which, for the manager reading the failed delivery."""
    status = str(sub.get("status") or "")
    if status == "DEACTIVATED":
        raise ProcessorRejected(f"Square deactivated subscription {sub.get('id')}: it bills nothing until it is "
                                "resumed at Square (Square stops a subscription it cannot bill: the location cannot "
                                "take payments, or the customer was deleted or has no name or email)")
    if our_status(status) == "canceled":
        raise ProcessorRejected(f"subscription {sub.get('id')} has ended")


def make_client():
    from square import Square

    base_url = settings.SQUARE_API_BASE or _BASE_URLS[settings.SQUARE_ENVIRONMENT]
    return Square(token=settings.SQUARE_ACCESS_TOKEN, base_url=base_url, timeout=20)


class SquareProcessor:
    name = PROCESSOR
    _options = {"max_retries": 0}

    def __init__(self, client, *, location_id: str):
        self.client, self.location_id = client, location_id

    @classmethod
    def from_settings(cls) -> "SquareProcessor":
        return cls(make_client(), location_id=settings.SQUARE_LOCATION_ID)

    def _call(self, fn, *args, **kwargs) -> dict:
        try:
            answer = fn(*args, request_options=self._options, **kwargs)
        except Exception as exc:
            raise translate_error(exc) from None
        return answer.dict(exclude_none=True) if hasattr(answer, "dict") else dict(answer or {})

    # catalog -------------------------------------------------------------------------------------
    def ensure_price(self, *, tier_ref: str, plan_id: str, product_name: str, amount_cents: int, currency: str,
                     interval: str, idempotency_key: str = "") -> str:
        """The tier version's plan variation id (its `price_ref`). The keys come from `tier_ref`
        alone: the same tier version always names the same plan and variation at Square."""
        if interval not in _CADENCE:
            raise ProcessorRejected(f"Square plans bill monthly or yearly, not per {interval}")
        plan = self._call(self.client.catalog.object.upsert, idempotency_key=f"square-plan:{tier_ref}",
                          object={"type": "SUBSCRIPTION_PLAN", "id": f"#plan-{tier_ref}",
                                  "subscription_plan_data": {"name": product_name}})["catalog_object"]
        variation = self._call(
            self.client.catalog.object.upsert, idempotency_key=f"square-variation:{tier_ref}",
            object={"type": "SUBSCRIPTION_PLAN_VARIATION", "id": f"#variation-{tier_ref}",
                    "subscription_plan_variation_data": {
                        "name": product_name, "subscription_plan_id": plan["id"],
                        "phases": [{"cadence": _CADENCE[interval], "ordinal": 0,
                                    "pricing": {"type": "STATIC", "price_money": {
                                        "amount": amount_cents, "currency": currency.upper()}}}]}})["catalog_object"]
        return str(variation["id"])

    # customers and cards -------------------------------------------------------------------------
    def ensure_customer(self, *, member_ref: str, existing_ref: str, idempotency_key: str = "",
                        given_name: str = "", family_name: str = "", email: str = "") -> str:
        """The member's Square customer. Square refuses one with no name, company, email or phone: the
        member's name and email (where Square sends its invoices) go with our ref, nothing else."""
        if existing_ref:
            return existing_ref
        contact = {k: v for k, v in (("given_name", given_name), ("family_name", family_name),
                                     ("email_address", email)) if v}
        customer = self._call(self.client.customers.create, idempotency_key=f"square-customer:{member_ref}",
                              reference_id=member_ref, **contact)["customer"]
        return str(customer["id"])

    def save_card(self, *, customer_ref: str, source_token: str, member_ref: str) -> str:
        """A card on file from the Web Payments SDK's single-use token; returns the card id. The key is
        a digest of our member ref and the token: CreateCard refuses a key over 45 characters, and a
        browser's token alone is about 37."""
        digest = hashlib.sha256(f"{member_ref}:{source_token}".encode()).hexdigest()[:32]
        card = self._call(self.client.cards.create, idempotency_key=f"square-card:{digest}",
                          source_id=source_token, card={"customer_id": customer_ref, "reference_id": member_ref})
        return str(card["card"]["id"])

    def default_payment_method(self, *, customer_ref: str) -> str:
        """The customer's card on file (the first enabled one), or "" when there is none yet."""
        try:
            for card in self.client.cards.list(customer_id=customer_ref, request_options=self._options):
                if card.enabled is not False and card.id:
                    return str(card.id)
        except Exception as exc:
            raise translate_error(exc) from None
        return ""

    # subscriptions -------------------------------------------------------------------------------
    def _ref(self, sub: dict, *, created: bool = False) -> SubscriptionRef:
        actions = sub.get("actions") or []
        swap = next((a for a in actions if a.get("type") == "SWAP_PLAN"), None)
        money = sub.get("price_override_money") or {}
        return SubscriptionRef(
            customer_ref=str(sub.get("customer_id") or ""), subscription_ref=str(sub.get("id") or ""),
            status=our_status(sub.get("status")), price_ref=str(sub.get("plan_variation_id") or ""), created=created,
            extra={"collection_paused": sub.get("status") == "PAUSED", "amount_cents": money.get("amount"),
                   "pending_price_ref": (swap or {}).get("new_plan_variation_id", ""),
                   "changes_on": (swap or {}).get("effective_date", ""),
                   "ends_on": sub.get("canceled_date", ""), "charged_through": sub.get("charged_through_date", "")})

    def _get(self, subscription_ref: str) -> dict:
        """The subscription with its scheduled actions (Square lists them only when asked:
        `include=actions`), which the swap, pause, resume and cancel decisions read."""
        return self._call(self.client.subscriptions.get, subscription_id=subscription_ref,
                          include="actions")["subscription"]

    def find_subscription(self, *, customer_ref: str, membership_ref: str = "", price_ref: str = "") -> dict | None:
        """The customer's live subscription at our location (on `price_ref` when given), not one that
        is ending: a cancelled membership's stays ACTIVE until its `canceled_date`, and a member who
        rejoins meanwhile needs her own. Square keeps no metadata on a subscription; the ledger allows
        one open membership per member."""
        found = self._call(self.client.subscriptions.search, include=["actions"], query={"filter": {
            "customer_ids": [customer_ref], "location_ids": [self.location_id]}})
        for sub in found.get("subscriptions") or []:
            if (sub.get("status") in _LIVE and not sub.get("canceled_date")
                    and price_ref in ("", sub.get("plan_variation_id"))):
                return sub
        return None

    def ensure_subscription(self, *, customer_ref: str, membership_ref: str, price_ref: str, metadata: dict,
                            idempotency_key: str = "") -> SubscriptionRef:
        found = self.find_subscription(customer_ref=customer_ref, price_ref=price_ref)
        if found is not None:
            return self._ref(found)
        params: dict[str, Any] = {"location_id": self.location_id, "customer_id": customer_ref,
                                  "plan_variation_id": price_ref,
                                  "idempotency_key": f"square-subscription:{membership_ref}:{price_ref}"}
        card = metadata.get("card_ref") or self.default_payment_method(customer_ref=customer_ref)
        if card:
            params["card_id"] = card                      # else Square emails each invoice
        return self._ref(self._call(self.client.subscriptions.create, **params)["subscription"], created=True)

    def retrieve_subscription(self, *, subscription_ref: str) -> SubscriptionRef:
        return self._ref(self._get(subscription_ref))

    def _drop_action(self, sub: dict, kind: str) -> dict:
        for action in sub.get("actions") or []:
            if action.get("type") == kind:
                sub = self._call(self.client.subscriptions.delete_action, subscription_id=sub["id"],
                                 action_id=action["id"])["subscription"]
        return sub

    def change_price(self, *, subscription_ref: str, price_ref: str, idempotency_key: str = "",
                     proration_behavior: str | None = None) -> SubscriptionRef:
        """A plan swap at the end of the current cycle (Square's only way; an immediate change is a
        cancellation and a new subscription). A pending swap to another plan is replaced."""
        sub = self._get(subscription_ref)
        refuse_ended(sub)
        pending = next((a for a in sub.get("actions") or [] if a.get("type") == "SWAP_PLAN"), None)
        if pending is not None and pending.get("new_plan_variation_id") == price_ref:
            return self._ref(sub)                         # a retry: the swap is already scheduled
        sub = self._drop_action(sub, "SWAP_PLAN")
        if sub.get("plan_variation_id") == price_ref:
            return self._ref(sub)
        answer = self._call(self.client.subscriptions.swap_plan, subscription_id=subscription_ref,
                            new_plan_variation_id=price_ref)
        return self._ref(dict(answer["subscription"], actions=answer.get("actions") or []))

    def pause_collection(self, *, subscription_ref: str, resumes_at: datetime | None,
                         idempotency_key: str = "") -> SubscriptionRef:
        """A PAUSE action at the paid cycle's end, with no resume date (`resumes_at` is not sent):
        Square refuses one less than a billing cycle after the pause, and the ledger resumes the
        subscription itself when the pause ends (its RESUMED event, `resume_collection`)."""
        sub = self._get(subscription_ref)
        if sub.get("status") == "PAUSED" or any(a.get("type") == "PAUSE" for a in sub.get("actions") or []):
            return self._ref(sub)
        when = {}
        if sub.get("status") == "PENDING" and sub.get("start_date"):
            # not started (a tier change's new subscription): paused on its start date, said explicitly —
            # with no date Square pauses "on the starting date of the next billing cycle", which for a
            # subscription whose first cycle has not begun could be read as the one after its first
            when = {"pause_effective_date": sub["start_date"]}
        answer = self._call(self.client.subscriptions.pause, subscription_id=subscription_ref, **when)
        return self._ref(dict(answer["subscription"], actions=answer.get("actions") or []))

    def resume_collection(self, *, subscription_ref: str, idempotency_key: str = "") -> SubscriptionRef:
        sub = self._get(subscription_ref)
        if any(a.get("type") == "PAUSE" for a in sub.get("actions") or []):
            return self._ref(self._drop_action(sub, "PAUSE"))   # not paused yet: the pause is called off
        if sub.get("status") != "PAUSED":
            return self._ref(sub)
        answer = self._call(self.client.subscriptions.resume, subscription_id=subscription_ref)
        return self._ref(dict(answer["subscription"], actions=answer.get("actions") or []))

    def cancel_subscription(self, *, subscription_ref: str, idempotency_key: str = "") -> SubscriptionRef:
        """Square cancels at the end of the paid cycle (`canceled_date`, the day its
        `charged_through_date` names). Nothing is sent for a subscription already ending or ended.

        A DEACTIVATED one bills nothing now, but ResumeSubscription "resume[s] a paused or a deactivated
        subscription": resumed at Square, it would bill a member the ledger cancelled. Square documents
        CancelSubscription for "an active subscription" (its reference; "an active or paused
        subscription", developer.squareup.com/docs/subscriptions-api/actions-events) and says nothing
        of a deactivated one, so it is asked: taken, the subscription ends; refused, the answer says so
        (`extra["cancel_refused"]`, the delivery's result) and reconciliation shows the deactivated
        subscription of a cancelled membership for the manager to cancel at Square."""
        sub = self._get(subscription_ref)
        deactivated = sub.get("status") == "DEACTIVATED"
        if (our_status(sub.get("status")) == "canceled" and not deactivated) or sub.get("canceled_date"):
            return self._ref(sub)
        try:
            answer = self._call(self.client.subscriptions.cancel, subscription_id=subscription_ref)
        except ProcessorRejected as exc:
            if not deactivated or isinstance(exc, NotFound):
                raise
            ref = self._ref(sub)
            ref.extra["cancel_refused"] = (f"Square refused to cancel deactivated subscription {subscription_ref} "
                                           f"({exc}); it bills nothing unless resumed at Square: cancel it in "
                                           "Square's Dashboard")
            return ref
        return self._ref(dict(answer["subscription"], actions=answer.get("actions") or []))

    # dunning -------------------------------------------------------------------------------------
    def invoice_payment_url(self, *, invoice_ref: str) -> str:
        """The page where the member pays the open invoice (`public_url`, hosted by Square; the
        member may pay there with another card). Square's APIs cannot pay an invoice, and Square does
        not retry a failed scheduled charge: this page is how an open Square invoice gets paid.
        Raises ProcessorRejected for an invoice with no such page (a draft, a cancelled one) or nothing
        left to pay on it (paid at Square, its webhook not heard yet)."""
        invoice = self._call(self.client.invoices.get, invoice_id=invoice_ref)["invoice"]
        status, url = str(invoice.get("status") or ""), str(invoice.get("public_url") or "")
        if status in _NO_PAYMENT_PAGE or status in _PAID_INVOICE or not url:     # nothing (more) to pay
            raise ProcessorRejected(f"Square invoice {invoice_ref} has no payment page ({status or 'no status'})")
        return url

    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str):
        """No API pays a Square invoice (a practice's policy leaves retries to Square, which makes
        none): a retry only looks — paid if the member paid it meanwhile, else failed, unretried."""
        from .dunning import RetryOutcome

        invoice = self._call(self.client.invoices.get, invoice_id=invoice_id)["invoice"]
        if invoice.get("status") in _PAID_INVOICE:
            return RetryOutcome.succeeded()
        return RetryOutcome.failed(NO_RETRY_API)


# Square's invoice statuses with no page to pay on, those that are paid, and the decline code of a
# retry asked of Square (none is possible). Square's `InvoiceStatus`: DRAFT "has no `public_url`";
# CANCELED "Square no longer requests payments … the invoice is shown as canceled and does not accept
# payment"; FAILED "Square canceled the invoice due to suspicious activity" (not a declined charge:
# that one stays UNPAID); PAYMENT_PENDING "a payment on the invoice was initiated but has not yet been
# processed … other payments cannot be initiated".
_NO_PAYMENT_PAGE = frozenset({"DRAFT", "CANCELED", "FAILED", "PAYMENT_PENDING"})
_PAID_INVOICE = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})
NO_RETRY_API = "no_retry_api"
