"""The fake Square's own guard: the strict check against the SDK's models refuses what the SDK's
lenient models would let through, and the webhooks it posts verify with the SDK's own helper."""

import json

import pytest
from square.types.invoice_payment_made_event import InvoicePaymentMadeEvent
from square.types.subscription import Subscription
from square.types.upsert_catalog_object_response import UpsertCatalogObjectResponse
from square.utils.webhooks_helper import verify_signature

from tests.support.square_fake import SquareFake
from tests.support.square_models import ShapeError, check


@pytest.mark.parametrize("body,why", [
    ({"id": "S1", "status": "ACTIVE", "plan_id": "P"}, "declares no field plan_id"),
    ({"id": "S1", "status": "LAPSED"}, "'LAPSED' is not one of"),
    ({"id": "S1", "actions": [{"id": "A", "type": "FREEZE"}]}, "'FREEZE' is not one of"),
])
def test_shapes_the_sdk_would_accept_are_refused(body, why):
    Subscription.model_validate(body)          # the SDK's model alone lets it through
    with pytest.raises(ShapeError, match=why):
        check(Subscription, body)


def test_a_catalog_object_of_no_known_type_and_a_wrong_nested_field_are_refused():
    with pytest.raises(ShapeError, match="names no arm"):
        check(UpsertCatalogObjectResponse, {"catalog_object": {"type": "MEMBERSHIP", "id": "X"}})
    with pytest.raises(ShapeError, match="declares no field price_cents"):
        check(UpsertCatalogObjectResponse, {"catalog_object": {
            "type": "SUBSCRIPTION_PLAN_VARIATION", "id": "V", "subscription_plan_variation_data": {
                "name": "Glow", "phases": [{"cadence": "MONTHLY", "price_cents": 100}]}}})


def test_webhooks_are_signed_over_the_notification_url_and_the_raw_body():
    fake = SquareFake(signature_key="key-1", notification_url="https://ledger.example/webhooks/square/")
    fake.subscriptions["SUB1"] = {"id": "SUB1", "customer_id": "C1", "status": "CANCELED", "version": 2,
                                  "location_id": fake.location_id, "plan_variation_id": "V1"}
    body = fake.emit("subscription.updated", "subscription", fake.subscriptions["SUB1"])
    _, headers = fake.outbox[0]
    signature = headers["x-square-hmacsha256-signature"]

    assert verify_signature(request_body=body.decode(), signature_header=signature, signature_key="key-1",
                            notification_url="https://ledger.example/webhooks/square/")
    assert not verify_signature(request_body=body.decode(), signature_header=signature, signature_key="key-1",
                                notification_url="https://ledger.example/webhooks/square")    # no trailing slash
    assert json.loads(body)["data"]["object"]["subscription"]["status"] == "CANCELED"


def test_the_fixture_payloads_are_exactly_squares_shapes():
    from pathlib import Path

    from tests.support.square_fake import EVENT_MODELS

    folder = Path(__file__).resolve().parents[2] / "fixtures" / "square"
    payloads = sorted(folder.glob("*.json"))
    assert payloads
    for path in payloads:
        event = json.loads(path.read_text())
        check(EVENT_MODELS[event["type"]], event)
    check(InvoicePaymentMadeEvent, json.loads((folder / "invoice.payment_made.json").read_text()))
