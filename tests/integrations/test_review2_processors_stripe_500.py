"""A subscription Stripe created behind a 500. Stripe calls a 500's result indeterminate (the write may
have been made) and saves it against the idempotency key, replaying it (`Idempotent-Replayed: true`).
The SDK's own retry resends a 500 under the same key when Stripe does not say `Stripe-Should-Retry:
false`; that replay must not make the subscription again under a fresh key in the same breath, before
Stripe's state is read again: the member would be billed by two subscriptions. Stripe's API is played
by a local HTTP server answering with the recorded subscription (tests/fixtures/stripe)."""

import json

import pytest
import stripe
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


def answers(*outcomes):
    """A Stripe write that meets `outcomes` in turn (an exception raised, else the answer returned),
    noting the idempotency key and the SDK retries of each request."""
    sent: list[tuple[str, int]] = []

    def write(params, options):
        sent.append((options["idempotency_key"], options["max_network_retries"]))
        outcome = outcomes[len(sent) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return write, sent


def replayed_500():
    return stripe.APIError("An unknown error occurred", http_status=500, headers={"Idempotent-Replayed": "true"})


def test_a_write_that_got_no_answer_is_sent_again_under_the_same_key(settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    write, sent = answers(stripe.APIConnectionError("connection reset", should_retry=True), {"id": "sub_made1"})
    assert StripeProcessor(client=None)._call(write, {}, {"idempotency_key": "k:subscription"}) == {"id": "sub_made1"}
    assert sent == [("k:subscription", 0), ("k:subscription", 0)]


def test_a_500_replayed_to_a_write_sent_again_in_the_same_call_waits_for_a_later_attempt(settings):
    # the lost answer may have been that 500, the write made behind it: no fresh key before Stripe is read again
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    write, sent = answers(stripe.APIConnectionError("connection reset", should_retry=True), replayed_500(),
                          {"id": "sub_made2"})
    with pytest.raises(ProcessorUnavailable):
        StripeProcessor(client=None)._call(write, {}, {"idempotency_key": "k:subscription"})
    assert [key for key, _ in sent] == ["k:subscription", "k:subscription"]


def test_a_500_saved_by_an_earlier_attempt_takes_the_next_key_at_once(settings):
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    write, sent = answers(replayed_500(), {"id": "sub_made1"})
    assert StripeProcessor(client=None)._call(write, {}, {"idempotency_key": "k:subscription"}) == {"id": "sub_made1"}
    assert [key for key, _ in sent] == ["k:subscription", "k:subscription:after-5xx-1"]
