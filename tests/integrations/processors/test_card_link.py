"""The card-update link of a dunning message (issue 19, medium 4): it opens a processor page that can
only replace the card, while its case is open, for at most 7 days, and never again once a card was
saved with it; otherwise the member gets a plain page saying to call the clinic."""

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import time_machine
from django.core.cache import cache

from billing import dunning
from billing.dunning.links import card_link_token
from integrations.processors.stripe import StripeProcessor
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
    membership,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "stripe_dunning"
SESSION = json.loads((FIXTURES / "billing_portal_session.json").read_text())


def _open(client, token):
    return client.get(f"/billing/card/{token}/")


@pytest.fixture
def case(membership):
    return fail(membership, now=T0)


def test_a_fresh_link_opens_the_processor_page(client, case):
    with time_machine.travel(T0 + timedelta(days=6, hours=23), tick=False):
        token = card_link_token(case.pk)
        response = _open(client, token)
    assert response.status_code == 302 and response["Location"].startswith("https://billing.processor.test/")


def test_older_than_seven_days_is_refused_whatever_the_setting(client, case, settings):
    settings.DUNNING_CARD_LINK_MAX_AGE_DAYS = 45  # the old default: capped at 7
    with time_machine.travel(T0, tick=False):
        token = card_link_token(case.pk)
    with time_machine.travel(T0 + timedelta(days=7, minutes=1), tick=False):
        response = _open(client, token)
    assert response.status_code == 410
    page = response.content.decode()
    assert "This link has expired" in page and "call the clinic" in page and case.practice.name in page
    assert "Location" not in response


def test_a_shorter_setting_is_kept(client, case, settings):
    settings.DUNNING_CARD_LINK_MAX_AGE_DAYS = 2
    with time_machine.travel(T0, tick=False):
        token = card_link_token(case.pk)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        assert _open(client, token).status_code == 410


def test_refused_once_used_to_save_a_card(client, case, membership):
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        token = card_link_token(case.pk)
        assert _open(client, token).status_code == 302
    # Stripe reports the card the member saved on that page (a new default card): the case retries it.
    dunning.retry_open_cases_after_card_update(member=membership.member, payment_method_ref="pm_new",
                                               now=T0 + timedelta(hours=1, minutes=2))
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        response = _open(client, token)
        assert response.status_code == 410 and "already used to save a card" in response.content.decode()
        # A link signed after that card (the next message's) opens the page again.
        assert _open(client, card_link_token(case.pk)).status_code == 302


def test_a_card_saved_after_the_retries_ran_out_still_uses_the_link(client, case, membership, settings):
    settings.DUNNING_CARD_UPDATE_RETRIES = 0
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        token = card_link_token(case.pk)
    dunning.retry_open_cases_after_card_update(member=membership.member, payment_method_ref="pm_new",
                                               now=T0 + timedelta(hours=1, minutes=2))
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        assert _open(client, token).status_code == 410


def test_refused_once_the_case_is_closed(client, case):
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        token = card_link_token(case.pk)
    dunning.close_case_for_payment(invoice_ref=case.invoice_ref, now=T0 + timedelta(hours=2))
    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        response = _open(client, token)
    assert response.status_code == 200 and "Nothing to update" in response.content.decode()
    assert "Location" not in response


def test_forged_links_show_nothing_of_the_practice(client, case):
    for token in (card_link_token(case.pk) + "x", str(case.pk), "1:abc:def"):
        response = _open(client, token)
        assert response.status_code == 404 and case.practice.name not in response.content.decode()


# --- the Stripe side: a portal configuration that can only replace the card ---------------------------

@pytest.fixture
def stripe_api(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_portal"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    cache.clear()
    yield httpserver
    cache.clear()


def _form(request) -> dict:
    return {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}


def _configuration(cid="bpc_card_only", **features):
    enabled = {"payment_method_update": True, "invoice_history": False, "customer_update": False,
               "subscription_cancel": False, "subscription_update": False, **features}
    return {"id": cid, "object": "billing_portal.configuration", "active": True,
            "metadata": {"medspa_purpose": "card-update-v1"},
            "features": {name: {"enabled": on} for name, on in enabled.items()}}


def test_the_portal_configuration_enables_only_the_card_and_is_made_once(stripe_api):
    stripe_api.expect_request("/v1/billing_portal/configurations", method="GET").respond_with_json(
        {"object": "list", "data": [_configuration("bpc_default", invoice_history=True,
                                                   subscription_cancel=True)], "has_more": False})
    stripe_api.expect_request("/v1/billing_portal/configurations", method="POST").respond_with_json(
        _configuration())
    stripe_api.expect_request("/v1/billing_portal/sessions", method="POST").respond_with_json(SESSION)
    processor = StripeProcessor.from_settings()
    for _ in range(3):
        assert processor.card_update_url(customer_id="cus_test", return_url="https://ledger.example.com/done") \
            == SESSION["url"]
    calls = [(r.method, r.path) for r, _ in stripe_api.log]
    assert calls.count(("POST", "/v1/billing_portal/configurations")) == 1   # created once, then cached
    assert calls.count(("GET", "/v1/billing_portal/configurations")) == 1
    created = _form(next(r for r, _ in stripe_api.log if r.method == "POST" and r.path.endswith("configurations")))
    assert created["features[payment_method_update][enabled]"] == "true"
    for feature in ("invoice_history", "customer_update", "subscription_cancel", "subscription_update"):
        assert created[f"features[{feature}][enabled]"] == "false"
    session = _form(stripe_api.log[-1][0])
    assert session["configuration"] == "bpc_card_only"
    assert session["flow_data[type]"] == "payment_method_update"
    assert session["flow_data[after_completion][redirect][return_url]"] == "https://ledger.example.com/done"


def test_an_existing_card_only_configuration_is_reused(stripe_api):
    stripe_api.expect_request("/v1/billing_portal/configurations", method="GET").respond_with_json(
        {"object": "list", "data": [_configuration("bpc_ours")], "has_more": False})
    stripe_api.expect_request("/v1/billing_portal/sessions", method="POST").respond_with_json(SESSION)
    StripeProcessor.from_settings().card_update_url(customer_id="cus_test", return_url="https://x.example/done")
    assert ("POST", "/v1/billing_portal/configurations") not in [(r.method, r.path) for r, _ in stripe_api.log]
    assert _form(stripe_api.log[-1][0])["configuration"] == "bpc_ours"
