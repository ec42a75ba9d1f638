"""Idempotency keys within Square's limits, per endpoint (Square's OpenAPI specification,
square/connect-api-specification api.json, each request's `idempotency_key`): CreateCard "Max: 45
characters", UpsertCatalogObject maxLength 128, CreatePaymentLink maxLength 192; CreateCustomer and
CreateSubscription state none. The fake refuses a longer key as Square does (VALUE_TOO_LONG), so a key
that grows past a limit fails every test that sends it."""

import pytest

from integrations.processors.base import ProcessorRejected

from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)


def test_the_longest_keys_the_adapter_makes_fit_and_one_past_the_limit_is_refused(square, square_fake):  # noqa: F811
    # a tier version priced at one location, with ids far past any practice's: "square-variation:tr_…_l…"
    tier_ref = f"tr_{10 ** 12}_l{10 ** 12}"
    price_ref = square.ensure_price(tier_ref=tier_ref, plan_id="", product_name="Membership — Glow",
                                    amount_cents=19900, currency="usd", interval="month")
    assert price_ref in square_fake.catalog
    customer = square.ensure_customer(member_ref=f"mb_{10 ** 12}", existing_ref="", given_name="Nora")
    card = square.save_card(customer_ref=customer, source_token="cnon:" + "x" * 200, member_ref=f"mb_{10 ** 12}")
    assert card in square_fake.cards

    with pytest.raises(ProcessorRejected, match="VALUE_TOO_LONG"):
        square._call(square.client.catalog.object.upsert, idempotency_key="k" * 129,
                     object={"type": "SUBSCRIPTION_PLAN", "id": "#plan-long", "subscription_plan_data": {"name": "x"}})
    assert not [o for o in square_fake.catalog.values() if o.get("subscription_plan_data", {}).get("name") == "x"]
