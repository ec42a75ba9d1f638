"""Stripe Checkout for the join tests: a completed subscription-mode session and its
`checkout.session.completed` event, built from the session Stripe recorded
(tests/fixtures/stripe/checkout_session_subscription.json) moved to the state Stripe documents after
payment (`status: complete`, `payment_status: paid`, `subscription`, `customer`,
`customer_details`), and checked with the SDK's own `stripe.checkout.Session`; and a processor
double for the join page that records the hosted pages it was asked for."""

from __future__ import annotations

import copy
import json

import stripe

from integrations.processors.base import JoinCheckout

from .stripe_events import FIXTURES


def completed_session(*, join_ref: str, session_id: str = "cs_test_join0001", subscription_ref: str = "sub_join0001",
                      customer_ref: str = "cus_join0001", email: str = "new.member@example.com") -> dict:
    session = json.loads((FIXTURES / "checkout_session_subscription.json").read_text())
    session.update(
        id=session_id, status="complete", payment_status="paid", subscription=subscription_ref,
        customer=customer_ref, customer_email=email, client_reference_id=join_ref, metadata={"join_ref": join_ref},
        customer_details={"address": None, "email": email, "name": None, "phone": None, "tax_exempt": "none",
                          "tax_ids": []},
        url=None, success_url="http://testserver/join/glow/done/" + join_ref + "/",
        cancel_url="http://testserver/join/glow/cancelled/" + join_ref + "/")
    parsed = stripe.checkout.Session.construct_from(copy.deepcopy(session), "sk_test")
    assert parsed.object == "checkout.session" and parsed.mode == "subscription"
    assert parsed.status == "complete" and parsed.payment_status == "paid" and parsed.subscription == subscription_ref
    return session


def completed_event(session: dict, *, event_id: str = "evt_join_completed", created: int = 1764000100) -> dict:
    event = {"id": event_id, "object": "event", "api_version": "2025-10-29.clover", "created": created,
             "livemode": False, "pending_webhooks": 1, "type": "checkout.session.completed",
             "data": {"object": session}, "request": {"id": None, "idempotency_key": None}}
    assert stripe.Event.construct_from(copy.deepcopy(event), "sk_test").type == "checkout.session.completed"
    return event


class FakeJoinProcessor:
    """The processor as the join page sees it: the price exists, and each hosted page asked for is
    recorded (its parameters and idempotency key) and answered with a Checkout URL."""

    name = "stripe"

    def __init__(self):
        self.checkouts: list[dict] = []
        self.fail_with: Exception | None = None

    def ensure_price(self, **kwargs) -> str:
        return kwargs["plan_id"]

    def join_checkout(self, **kwargs) -> JoinCheckout:
        if self.fail_with is not None:
            raise self.fail_with
        self.checkouts.append(kwargs)
        ref = f"cs_test_fake{len(self.checkouts):04d}"
        return JoinCheckout(checkout_ref=ref, url=f"https://checkout.stripe.com/c/pay/{ref}")
