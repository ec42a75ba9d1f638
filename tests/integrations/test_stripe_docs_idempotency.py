"""Writes to Stripe after a Stripe 500, as Stripe documents its idempotency: "idempotency works by saving
the resulting status code and body of the first request made for any given idempotency key,
regardless of whether it succeeds or fails. Subsequent requests with the same key return the same
result, including 500 errors" (https://docs.stripe.com/api/idempotent_requests); a replayed answer
carries `Idempotent-Replayed: true`. Stripe's API is played by a local HTTP server answering with the
recorded subscription (tests/fixtures/stripe), read back with the SDK's own `stripe.Subscription`."""

import copy

import pytest
import stripe
from werkzeug import Response

from integrations.processors.base import ProcessorUnavailable
from integrations.processors.stripe import StripeProcessor
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event
from tests.support.stripe_recorded import stripe_at  # noqa: F401  (fixture)

SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


def subscription(**changes) -> dict:
    sub = dict(load_event("customer_subscription_updated_active.json")["data"]["object"], **changes)
    assert stripe.Subscription.construct_from(copy.deepcopy(sub), "sk_test").id == FIXTURE_SUBSCRIPTION
    return sub


def stripe_with_a_saved_500(server, *, replayed: bool):
    """Stripe that met an internal error on the first pause under our key and saved it: under that key
    it answers the same 500 again (a replay, when `replayed`); under any other key it pauses."""
    keys: list[str] = []
    paused = subscription(pause_collection={"behavior": "void", "resumes_at": None})

    def answer(request):
        key = request.headers.get("Idempotency-Key", "")
        keys.append(key)
        if key == "pause-1:pause":
            headers = {"Idempotent-Replayed": "true"} if replayed else {}
            return Response(stripe_json(SERVER_ERROR), status=500, headers=headers, content_type="application/json")
        return Response(stripe_json(paused), status=200, content_type="application/json")

    server.expect_request(f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}", method="GET").respond_with_json(
        subscription(pause_collection=None))
    server.expect_request(f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}", method="POST").respond_with_handler(answer)
    return keys


def stripe_json(body: dict) -> str:
    import json

    return json.dumps(body)


def test_a_pause_whose_key_stripe_answers_with_a_saved_500_reaches_stripe_under_a_fresh_key(stripe_at):  # noqa: F811
    keys = stripe_with_a_saved_500(stripe_at, replayed=True)
    ref = StripeProcessor.from_settings().pause_collection(subscription_ref=FIXTURE_SUBSCRIPTION, resumes_at=None,
                                                           idempotency_key="pause-1")
    assert ref.extra["collection_paused"] is True
    assert keys == ["pause-1:pause", "pause-1:pause:after-5xx-1"]       # derived from ours, the same each time


def test_a_500_not_replayed_is_retried_later_under_the_same_key(stripe_at):  # noqa: F811
    keys = stripe_with_a_saved_500(stripe_at, replayed=False)
    with pytest.raises(ProcessorUnavailable):
        StripeProcessor.from_settings().pause_collection(subscription_ref=FIXTURE_SUBSCRIPTION, resumes_at=None,
                                                         idempotency_key="pause-1")
    assert keys == ["pause-1:pause"]
