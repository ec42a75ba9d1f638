"""The Stripe side of the dunning protocol (retry = pay the open invoice; hosted card-update page)
against a local HTTP stand-in answering with recorded Stripe bodies."""

import json
from pathlib import Path

import pytest

from integrations.processors.dunning import ProcessorUnavailable, RetryOutcome
from integrations.processors.stripe_retry import StripeDunningProcessor

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stripe_dunning"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def stripe_api(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_dunning"
    return httpserver


def test_paid_invoice(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(fixture("invoice_paid.json"))
    assert StripeDunningProcessor().retry_invoice_payment("in_1", "medspa-dunning-1-retry-1") == RetryOutcome(True, "")
    request, _ = stripe_api.log[0]
    assert request.headers["Idempotency-Key"] == "medspa-dunning-1-retry-1"


def test_decline_raised_as_card_error_keeps_the_decline_code(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        fixture("card_error_insufficient_funds.json"), status=402)
    outcome = StripeDunningProcessor().retry_invoice_payment("in_1", "k1")
    assert outcome == RetryOutcome(paid=False, decline_code="insufficient_funds")


def test_decline_answered_as_an_open_invoice(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        fixture("invoice_failed_open.json"))
    assert StripeDunningProcessor().retry_invoice_payment("in_1", "k1") == RetryOutcome(False, "card_declined")


def test_already_paid_counts_as_paid(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        fixture("error_invoice_already_paid.json"), status=400)
    assert StripeDunningProcessor().retry_invoice_payment("in_1", "k1").paid


def test_server_errors_are_unavailable(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        {"error": {"type": "api_error", "message": "internal"}}, status=500)
    with pytest.raises(ProcessorUnavailable):
        StripeDunningProcessor().retry_invoice_payment("in_1", "k1")


def test_card_update_page_is_a_billing_portal_session(stripe_api):
    stripe_api.expect_request("/v1/billing_portal/sessions", method="POST").respond_with_json(
        fixture("billing_portal_session.json"))
    url = StripeDunningProcessor().card_update_url(customer_id="cus_test", return_url="https://ledger.example.com/x")
    assert url == "https://billing.stripe.com/p/session/test_YWNjdF8xTmlFZ2hJR3lvZmZ3"
    request, _ = stripe_api.log[0]
    body = request.get_data(as_text=True)
    assert "customer=cus_test" in body and "return_url=https" in body
