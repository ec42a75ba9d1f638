"""A subscription Stripe created behind a 500. Stripe calls a 500's result indeterminate (the write may
have been made) and saves it against the idempotency key, replaying it (`Idempotent-Replayed: true`).
The SDK's own retry resends a 500 under the same key when Stripe does not say `Stripe-Should-Retry:
false`; that replay must not make the subscription again under a fresh key in the same breath, before
Stripe's state is read again: the member would be billed by two subscriptions. Stripe's API is played
by a local HTTP server answering with the recorded subscription (tests/fixtures/stripe)."""

import json

import pytest
from werkzeug import Response

from integrations.processors.base import ProcessorUnavailable
from integrations.processors.stripe import StripeProcessor
from tests.support.stripe_events import load_event
from tests.support.stripe_recorded import stripe_at  # noqa: F401  (fixture)

SERVER_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


def stripe_creating_behind_a_500(server):
    """Stripe whose first subscription create under a key makes the subscription but answers 500 (saved:
    the same key again replays it); a create under a key never seen makes one and answers 200. The
    customer's subscriptions list shows every one made."""
    made: list[dict] = []
    keys: dict[str, int] = {}
    recorded = load_event("customer_subscription_updated_active.json")["data"]["object"]

    def create(request):
        key = request.headers.get("Idempotency-Key", "")
        keys[key] = keys.get(key, 0) + 1
        if key.endswith(":subscription") and keys[key] > 1:      # the saved 500, replayed
            return Response(json.dumps(SERVER_ERROR), status=500, headers={"Idempotent-Replayed": "true"},
                            content_type="application/json")
        sub = dict(recorded, id=f"sub_made{len(made) + 1}", metadata={"membership_ref": "ms_42"})
        made.append(sub)
        if key.endswith(":subscription"):                           # made, but Stripe answered 500
            return Response(json.dumps(SERVER_ERROR), status=500, content_type="application/json")
        return Response(json.dumps(sub), status=200, content_type="application/json")

    server.expect_request("/v1/subscriptions", method="GET").respond_with_handler(
        lambda request: Response(json.dumps({"object": "list", "data": made, "has_more": False}),
                                 content_type="application/json"))
    server.expect_request("/v1/subscriptions", method="POST").respond_with_handler(create)
    return made


def test_a_subscription_made_behind_a_500_is_not_made_again_by_the_sdk_retry(stripe_at, settings):  # noqa: F811
    settings.STRIPE_MAX_NETWORK_RETRIES = 1          # production's default: the SDK retries a 500 once
    made = stripe_creating_behind_a_500(stripe_at)
    processor = StripeProcessor.from_settings()

    def ensure():
        return processor.ensure_subscription(customer_ref="cus_TUfixture0001", membership_ref="ms_42",
                                             price_ref="price_1SXglowMonthly", metadata={},
                                             idempotency_key="enroll-42")

    with pytest.raises(ProcessorUnavailable):
        ensure()                                     # the outbox retries later
    ref = ensure()                                   # the retry reads Stripe first and finds it
    assert [sub["id"] for sub in made] == ["sub_made1"]
    assert ref.subscription_ref == "sub_made1"
