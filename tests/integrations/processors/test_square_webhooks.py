"""POST /webhooks/square/: the signature over the configured notification URL + the raw body, stored
once per event_id, answered at once; Square's documented events (tests/fixtures/square/) read into
the same facts as Stripe's."""

import json
from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from billing.facts import ChargeFailed, ChargeSucceeded, SubscriptionChanged
from integrations.models import InboundEvent, InboundStatus
from integrations.processors import square_events
from tests.support.square_fake import sign

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "square"
KEY, URL = "whsk-test-key", "https://ledger.example/webhooks/square/"
LA = ZoneInfo("America/Los_Angeles")    # the fixtures' `timezone`: Square's dates are days there


@pytest.fixture(autouse=True)
def square_settings(settings):
    settings.SQUARE_WEBHOOK_SIGNATURE_KEY = KEY
    settings.SQUARE_WEBHOOK_URL = URL


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def post(client, body: bytes, *, signature: str | None = None, url: str = URL, key: str = KEY):
    signature = sign(body=body, signature_key=key, notification_url=url) if signature is None else signature
    return client.post("/webhooks/square/", data=body, content_type="application/json",
                       headers={"x-square-hmacsha256-signature": signature})


@pytest.mark.parametrize("how", ["missing", "wrong key", "url rebuilt from the request", "body changed"])
def test_a_bad_signature_is_400_with_a_code_and_nothing_is_stored(client, how):
    body = load("invoice.payment_made.json")
    if how == "missing":
        answer = post(client, body, signature="")
    elif how == "wrong key":
        answer = post(client, body, key="another-key")
    elif how == "url rebuilt from the request":
        answer = post(client, body, url="http://testserver/webhooks/square/")
    else:
        answer = client.post("/webhooks/square/", data=body.replace(b"19900", b"1"), content_type="application/json",
                             headers={"x-square-hmacsha256-signature": sign(body=body, signature_key=KEY,
                                                                            notification_url=URL)})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_signature"
    assert InboundEvent.objects.count() == 0


def test_an_event_is_stored_once_per_event_id_however_often_square_retries(client, monkeypatch):
    monkeypatch.setattr("integrations.intake.trigger_processing", lambda inbound_id: None)
    body = load("invoice.payment_made.json")

    first, again = post(client, body), post(client, body)

    assert first.status_code == 200 and first.json() == {"received": True, "status": "received"}
    assert again.json() == {"received": True, "duplicate": True}
    row = InboundEvent.objects.get()
    assert (row.source, row.event_id, row.event_type, row.status) == (
        "square", "9a5a4e8d-1a8c-4c5b-b0a4-7d8cbe1d8c11", "invoice.payment_made", InboundStatus.RECEIVED)
    assert row.object_created == int(datetime(2026, 2, 1, 17, 45, 13, tzinfo=dt_timezone.utc).timestamp())


def test_an_event_type_we_do_not_act_on_is_stored_ignored(client):
    event = json.loads(load("invoice.payment_made.json"))
    event.update(type="invoice.published", event_id="other-1")
    post(client, json.dumps(event).encode())
    assert InboundEvent.objects.get().status == InboundStatus.IGNORED


def test_a_nul_character_is_refused_even_when_signed(client):
    body = load("invoice.payment_made.json").replace(b"Glow membership", b"Glow\\u0000")
    assert post(client, body).status_code == 400
    assert InboundEvent.objects.count() == 0


def test_other_methods_are_not_allowed(client):
    assert client.get("/webhooks/square/").status_code == 405


def test_payment_made_reads_as_a_paid_cycle_of_the_subscription():
    fact = square_events.parse_event(load("invoice.payment_made.json")).fact

    assert isinstance(fact, ChargeSucceeded)
    assert (fact.processor, fact.invoice_ref, fact.subscription_ref, fact.customer_ref) == (
        "square", "inv:0-ChCHu2mZEabLeeHahQnXDjZQECY", "9ba40961-995a-4a3d-8c53-048c40cafc13",
        "JDKYHBWT1D4F8MFH63DBMEN8Y4")
    assert (fact.amount_cents, fact.amount_paid_cents, fact.currency) == (19900, 19900, "usd")
    assert fact.period_start == datetime(2026, 2, 1, tzinfo=LA)         # its due date, in its own time zone
    assert fact.period_end == datetime(2026, 3, 1, tzinfo=LA)
    assert fact.billing_reason == ""                       # Square states none: the period decides


def test_scheduled_charge_failed_reads_as_a_soft_failure_of_the_open_invoice():
    fact = square_events.parse_event(load("invoice.scheduled_charge_failed.json")).fact

    assert isinstance(fact, ChargeFailed) and not fact.hard
    assert fact.invoice_ref == "inv:0-ChDuiwvvNm9CxPBfXnCKCFhEIQw" and fact.amount_cents == 19900
    assert fact.failure_code == "scheduled_charge_failed"
    assert fact.period_start == datetime(2026, 3, 1, tzinfo=LA)


def test_a_canceled_subscription_reads_as_ended_at_the_processor():
    fact = square_events.parse_event(load("subscription.updated.canceled.json")).fact

    assert isinstance(fact, SubscriptionChanged)
    assert (fact.status, fact.subscription_ref, fact.price_ref) == (
        "canceled", "9ba40961-995a-4a3d-8c53-048c40cafc13", "6JHXF3B2CW3YKHDV4XEM674H")
    assert fact.current_period_end == datetime(2026, 4, 1, tzinfo=LA)


@pytest.mark.parametrize("code,hard", [("CARD_EXPIRED", True), ("INVALID_ACCOUNT", True), ("CVV_FAILURE", True),
                                       ("INSUFFICIENT_FUNDS", False), ("GENERIC_DECLINE", False),
                                       ("CARD_DECLINED", False), ("", False)])
def test_hard_and_soft_declines_follow_squares_payment_error_codes(code, hard):
    assert square_events.is_hard_decline(code) is hard


def test_every_decline_code_named_is_one_of_squares_error_codes():
    import typing

    from square.types.error_code import ErrorCode

    known = set(typing.get_args(typing.get_args(ErrorCode)[0]))
    assert square_events.HARD_DECLINES | square_events.SOFT_DECLINES <= known
