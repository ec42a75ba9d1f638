"""Stripe side of the dunning protocol: `invoices.pay` for a retry, a Billing Portal session for the
card update. Only ids cross; the idempotency key goes in the request options."""

from __future__ import annotations

import logging

import stripe
from django.conf import settings

from .dunning import ProcessorRejected, ProcessorUnavailable, RetryOutcome

logger = logging.getLogger(__name__)


def stripe_client() -> stripe.StripeClient:
    kwargs = {"stripe_version": settings.STRIPE_API_VERSION, "max_network_retries": 0}
    if settings.STRIPE_API_BASE:
        kwargs["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **kwargs)


def _decline_of(invoice: dict) -> str:
    """The decline reason of an invoice that is still open after a payment attempt."""
    charge = invoice.get("charge")
    if isinstance(charge, dict):
        outcome = charge.get("outcome") or {}
        code = outcome.get("reason") if isinstance(outcome, dict) else None
        if charge.get("failure_code") or code:
            return str(code or charge.get("failure_code"))
    intent = invoice.get("payment_intent")
    if isinstance(intent, dict):
        error = intent.get("last_payment_error") or {}
        if error:
            return str(error.get("decline_code") or error.get("code") or "card_declined")
    return "card_declined"


class StripeDunningProcessor:
    def __init__(self, client: stripe.StripeClient | None = None):
        self.client = client or stripe_client()

    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str) -> RetryOutcome:
        try:
            invoice = self.client.v1.invoices.pay(invoice_id, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:  # Stripe raises on a decline
            error = exc.error
            code = (getattr(error, "decline_code", None) or getattr(error, "code", None) or exc.code or "card_declined")
            return RetryOutcome.failed(str(code))
        except stripe.InvalidRequestError as exc:
            if "already paid" in (exc.user_message or str(exc)).lower():
                return RetryOutcome.succeeded()
            raise ProcessorRejected(f"stripe refused the retry of {invoice_id}: {exc.code or exc.http_status}") from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise ProcessorUnavailable(f"stripe unavailable: {type(exc).__name__}") from exc
        except stripe.APIError as exc:
            raise ProcessorUnavailable(f"stripe error {exc.http_status}") from exc
        except stripe.StripeError as exc:
            raise ProcessorRejected(f"stripe refused the retry of {invoice_id}: {type(exc).__name__}") from exc
        data = invoice.to_dict()
        if data.get("status") == "paid":
            return RetryOutcome.succeeded()
        # localstripe (and an asynchronous decline) answers 200 with the invoice still open.
        return RetryOutcome.failed(_decline_of(data))

    def card_update_url(self, *, customer_id: str, return_url: str) -> str:
        try:
            session = self.client.v1.billing_portal.sessions.create(
                {"customer": customer_id, "return_url": return_url})
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
            raise ProcessorUnavailable(f"stripe unavailable: {type(exc).__name__}") from exc
        except stripe.StripeError as exc:
            raise ProcessorRejected(f"stripe refused the card-update session: {type(exc).__name__}") from exc
        return session.url
