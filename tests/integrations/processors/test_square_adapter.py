"""The Square adapter driven through the real SDK against the fake Square (every answer checked
against the SDK's own models): catalog, customer, subscription and its scheduled changes, and
Square's errors turned into ours."""

import pytest

from integrations.processors.base import PaymentDeclined, ProcessorRejected, ProcessorUnavailable
from integrations.processors.square import translate_error
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)


def _plans(fake, kind):
    return [o for o in fake.catalog.values() if o["type"] == kind]


def _tier_price(square, tier_ref="tr_7", cents=19900):
    return square.ensure_price(tier_ref=tier_ref, plan_id="", product_name="Glow", amount_cents=cents,
                               currency="usd", interval="month", idempotency_key="evt-1")


def test_a_tier_version_becomes_one_plan_and_one_variation_at_its_monthly_price(square, square_fake):
    price_ref = _tier_price(square)

    again = _tier_price(square)            # the outbox retries: the same keys, the same objects

    assert again == price_ref
    assert len(_plans(square_fake, "SUBSCRIPTION_PLAN")) == 1
    variations = _plans(square_fake, "SUBSCRIPTION_PLAN_VARIATION")
    assert len(variations) == 1 and variations[0]["id"] == price_ref
    phase = variations[0]["subscription_plan_variation_data"]["phases"][0]
    assert phase["cadence"] == "MONTHLY" and phase["pricing"]["price_money"] == {"amount": 19900, "currency": "USD"}


def test_a_crash_between_plan_and_variation_is_retried_without_a_second_plan(square, square_fake):
    original, calls = square_fake.handle, []

    def flaky(method, path, body):
        calls.append(path)
        if path == "/v2/catalog/object" and len(calls) == 2:   # the plan went through; the variation fails
            return 500, {"errors": [{"category": "API_ERROR", "code": "INTERNAL_SERVER_ERROR"}]}
        return original(method, path, body)

    square_fake.handle = flaky
    with pytest.raises(ProcessorUnavailable):
        _tier_price(square)
    price_ref = _tier_price(square)

    assert len(_plans(square_fake, "SUBSCRIPTION_PLAN")) == 1
    assert [v["id"] for v in _plans(square_fake, "SUBSCRIPTION_PLAN_VARIATION")] == [price_ref]


def test_two_tier_versions_are_two_variations(square, square_fake):
    assert _tier_price(square, "tr_7", 19900) != _tier_price(square, "tr_8", 14900)
    assert sorted(square_fake.price_of(v["id"]) for v in _plans(square_fake, "SUBSCRIPTION_PLAN_VARIATION")) == [
        14900, 19900]


def test_customer_is_made_once_per_member(square, square_fake):
    first = square.ensure_customer(member_ref="mb_1", existing_ref="", idempotency_key="a", given_name="Nora")
    second = square.ensure_customer(member_ref="mb_1", existing_ref="", idempotency_key="b", given_name="Nora")
    kept = square.ensure_customer(member_ref="mb_1", existing_ref=first, idempotency_key="c")

    assert first == second == kept
    assert len(square_fake.customers) == 1
    assert square_fake.customers[first]["reference_id"] == "mb_1"


def _subscribed(square, square_fake):
    price_ref = _tier_price(square)
    customer = square.ensure_customer(member_ref="mb_1", existing_ref="", idempotency_key="k", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:card-nonce-ok", member_ref="mb_1")
    ref = square.ensure_subscription(customer_ref=customer, membership_ref="ms_1", price_ref=price_ref,
                                     metadata={"card_ref": card}, idempotency_key="k")
    return price_ref, ref


def test_subscription_is_created_once_and_its_first_cycle_charged(square, square_fake):
    price_ref, ref = _subscribed(square, square_fake)
    again = square.ensure_subscription(customer_ref=ref.customer_ref, membership_ref="ms_1", price_ref=price_ref,
                                       metadata={}, idempotency_key="k2")

    assert ref.created and not again.created and again.subscription_ref == ref.subscription_ref
    assert len(square_fake.subscriptions) == 1 and ref.status == "active" and ref.price_ref == price_ref
    assert [i["status"] for i in square_fake.invoices.values()] == ["PAID"]


def test_plan_swap_waits_for_the_cycle_end_and_one_pending_swap_is_kept(square, square_fake):
    _, ref = _subscribed(square, square_fake)
    cheaper = _tier_price(square, "tr_8", 14900)
    dearer = _tier_price(square, "tr_9", 29900)

    swapped = square.change_price(subscription_ref=ref.subscription_ref, price_ref=cheaper, idempotency_key="s1")
    square.change_price(subscription_ref=ref.subscription_ref, price_ref=cheaper, idempotency_key="s1")
    assert swapped.price_ref == ref.price_ref                       # still the old plan this cycle
    assert swapped.extra["pending_price_ref"] == cheaper
    assert swapped.extra["changes_on"] == swapped.extra["charged_through"]

    replaced = square.change_price(subscription_ref=ref.subscription_ref, price_ref=dearer, idempotency_key="s2")
    actions = square_fake._actions[ref.subscription_ref]
    assert [a["new_plan_variation_id"] for a in actions if a["type"] == "SWAP_PLAN"] == [dearer]
    assert replaced.extra["pending_price_ref"] == dearer

    square_fake.bill(ref.subscription_ref)                           # the next cycle bills the new plan
    assert square.retrieve_subscription(subscription_ref=ref.subscription_ref).price_ref == dearer
    assert square_fake.price_of(dearer) == 29900


def test_pause_resume_and_cancel_through_the_subscriptions_api(square, square_fake):
    _, ref = _subscribed(square, square_fake)
    sub_id = ref.subscription_ref

    square.pause_collection(subscription_ref=sub_id, resumes_at=None, idempotency_key="p")
    square.pause_collection(subscription_ref=sub_id, resumes_at=None, idempotency_key="p")
    assert [a["type"] for a in square_fake._actions[sub_id]] == ["PAUSE"]
    square_fake.apply_due_actions(today=square_fake.now.date().replace(year=2027))
    assert square.retrieve_subscription(subscription_ref=sub_id).status == "paused"

    square.resume_collection(subscription_ref=sub_id, idempotency_key="r")
    square_fake.apply_due_actions(today=square_fake.now.date().replace(year=2027))
    assert square.retrieve_subscription(subscription_ref=sub_id).status == "active"

    ended = square.cancel_subscription(subscription_ref=sub_id, idempotency_key="c")
    square.cancel_subscription(subscription_ref=sub_id, idempotency_key="c")
    assert ended.extra["ends_on"] == ended.extra["charged_through"] and ended.status == "active"
    assert square_fake.calls("POST", f"/v2/subscriptions/{sub_id}/cancel") == 1


def test_resume_before_the_pause_began_calls_the_pause_off(square, square_fake):
    _, ref = _subscribed(square, square_fake)
    square.pause_collection(subscription_ref=ref.subscription_ref, resumes_at=None, idempotency_key="p")

    resumed = square.resume_collection(subscription_ref=ref.subscription_ref, idempotency_key="r")

    assert resumed.status == "active" and square_fake._actions[ref.subscription_ref] == []


@pytest.mark.parametrize("status,code,category,error", [
    (429, "RATE_LIMITED", "RATE_LIMIT_ERROR", ProcessorUnavailable),
    (500, "INTERNAL_SERVER_ERROR", "API_ERROR", ProcessorUnavailable),
    (503, "SERVICE_UNAVAILABLE", "API_ERROR", ProcessorUnavailable),
    (401, "ACCESS_TOKEN_EXPIRED", "AUTHENTICATION_ERROR", ProcessorRejected),
])
def test_square_errors_become_ours_and_nothing_is_retried_inside_the_call(square, square_fake, status, code,
                                                                           category, error):
    square_fake.fail_next(status, code, category)

    with pytest.raises(error) as raised:
        square.ensure_customer(member_ref="mb_1", existing_ref="", idempotency_key="k", given_name="Nora")

    assert square_fake.calls("POST", "/v2/customers") == 1            # the outbox owns the backoff
    if status == 401:
        assert "SQUARE_ACCESS_TOKEN" in str(raised.value)


def test_unknown_plan_and_forgotten_subscription_are_rejected_not_retried(square, square_fake):
    customer = square.ensure_customer(member_ref="mb_1", existing_ref="", idempotency_key="k", given_name="Nora")
    with pytest.raises(ProcessorRejected, match="NOT_FOUND"):
        square.ensure_subscription(customer_ref=customer, membership_ref="ms_1", price_ref="NO_SUCH_VARIATION",
                                   metadata={}, idempotency_key="k")

    _, ref = _subscribed(square, square_fake)
    square_fake.forget_subscription(ref.subscription_ref)
    with pytest.raises(ProcessorRejected, match="NOT_FOUND"):
        square.cancel_subscription(subscription_ref=ref.subscription_ref, idempotency_key="c")


def test_a_declined_card_is_a_payment_declined_hard_or_soft_by_squares_code():
    from square.core.api_error import ApiError

    def declined(code):
        return translate_error(ApiError(status_code=400, body={"errors": [
            {"category": "PAYMENT_METHOD_ERROR", "code": code, "detail": "declined"}]}))

    assert isinstance(declined("INSUFFICIENT_FUNDS"), PaymentDeclined) and not declined("INSUFFICIENT_FUNDS").hard
    assert declined("CARD_EXPIRED").hard and declined("CARD_EXPIRED").failure_code == "CARD_EXPIRED"
    assert not declined("GENERIC_DECLINE").hard
