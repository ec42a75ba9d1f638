"""The Stripe side of the dunning protocol (retry = pay the open invoice; hosted card-update page)
against a local HTTP stand-in answering with recorded Stripe bodies."""

import json
from pathlib import Path

import pytest

from integrations.processors.dunning import ProcessorRejected, ProcessorUnavailable, RetryOutcome
from integrations.processors.stripe import StripeProcessor

FIXTURES = Path(__file__).parents[2] / "fixtures" / "stripe_dunning"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def stripe_api(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_dunning"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    # The adapter reads the invoice first (an invoice paid meanwhile is not paid twice).
    httpserver.expect_request("/v1/invoices/in_1", method="GET").respond_with_json(fixture("invoice_failed_open.json"))
    return httpserver


def test_paid_invoice(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(fixture("invoice_paid.json"))
    outcome = StripeProcessor.from_settings().retry_invoice_payment("in_1", "medspa-dunning-1-retry-1")
    assert outcome.paid and outcome.charge.invoice_ref == "in_infFe5zucxzE4n"
    assert outcome.charge.amount_paid_cents == 19900 and outcome.charge.subscription_ref == "sub_aSwAnSv1Ui4NQr"
    # a retried renewal is the renewal: it opens its cycle (refilled once, by invoice id)
    assert outcome.charge.billing_reason == "subscription_cycle" and not outcome.charge.trial
    request, _ = stripe_api.log[1]
    assert request.headers["Idempotency-Key"].startswith("medspa-dunning-1-retry-1")


def test_decline_raised_as_card_error_keeps_the_decline_code(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        fixture("card_error_insufficient_funds.json"), status=402)
    outcome = StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1")
    assert outcome == RetryOutcome(paid=False, decline_code="insufficient_funds")


def test_hard_decline_code_comes_back(stripe_api):
    body = fixture("card_error_insufficient_funds.json")
    body["error"]["decline_code"] = "lost_card"
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(body, status=402)
    assert StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1").decline_code == "lost_card"


def test_decline_answered_as_an_open_invoice(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        fixture("invoice_failed_open.json"))
    assert StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1") == RetryOutcome(False, "card_declined")


def test_an_invoice_paid_meanwhile_is_not_charged_again(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    httpserver.expect_request("/v1/invoices/in_1", method="GET").respond_with_json(fixture("invoice_paid.json"))
    assert StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1").paid
    assert [r.method for r, _ in httpserver.log] == ["GET"]


@pytest.mark.parametrize("status", ["void", "uncollectible"])
def test_an_invoice_voided_or_written_off_meanwhile_is_never_charged(settings, httpserver, status):
    """A retry already on its way when the practice voided the invoice (or marked it uncollectible,
    which Stripe would still let us charge): the member is not charged."""
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    httpserver.expect_request("/v1/invoices/in_1", method="GET").respond_with_json(
        dict(fixture("invoice_failed_open.json"), status=status))
    with pytest.raises(ProcessorRejected, match="no payment expected"):
        StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1")
    assert [r.method for r, _ in httpserver.log] == ["GET"]


def test_server_errors_are_unavailable(stripe_api):
    stripe_api.expect_request("/v1/invoices/in_1/pay", method="POST").respond_with_json(
        {"error": {"type": "api_error", "message": "internal"}}, status=500)
    with pytest.raises(ProcessorUnavailable):
        StripeProcessor.from_settings().retry_invoice_payment("in_1", "k1")


def test_card_update_page_is_a_billing_portal_session(stripe_api):
    from django.core.cache import cache

    cache.clear()
    stripe_api.expect_request("/v1/billing_portal/configurations", method="GET").respond_with_json(
        {"object": "list", "data": [], "has_more": False})
    stripe_api.expect_request("/v1/billing_portal/configurations", method="POST").respond_with_json(
        {"id": "bpc_card_only", "object": "billing_portal.configuration", "active": True,
         "metadata": {"medspa_purpose": "card-update-v1"}})
    stripe_api.expect_request("/v1/billing_portal/sessions", method="POST").respond_with_json(
        fixture("billing_portal_session.json"))
    url = StripeProcessor.from_settings().card_update_url(customer_id="cus_test", return_url="https://ledger.example.com/x")
    assert url == "https://billing.stripe.com/p/session/test_YWNjdF8xTmlFZ2hJR3lvZmZ3"
    request, _ = stripe_api.log[-1]
    body = request.get_data(as_text=True)
    assert "customer=cus_test" in body and "return_url=https" in body
    cache.clear()
