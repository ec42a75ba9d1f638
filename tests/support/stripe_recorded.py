"""Stripe's API played by a local HTTP server (pytest-httpserver) answering with recorded responses
(current API shapes, tests/fixtures/stripe): the fixture that points the app at it, a member with a
Stripe customer, and the requests Stripe makes around a card saved on its hosted page."""

import json

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from memberships import services
from memberships.models import AutomationStage
from tests.factories import MemberFactory
from tests.support.stripe_events import FIXTURES, FIXTURE_SUBSCRIPTION, load_event, post_event


def recorded(name, membership=None):
    text = (FIXTURES / name).read_text()
    if membership is not None:
        text = text.replace('"ms_0"', f'"ms_{membership.pk}"')
    return json.loads(text)


def post_card_saved(stripe_at, client, membership) -> None:
    """Stripe's side of a card saved on the hosted setup page (the SetupIntent read, the customer's
    and the subscription's new default card, as recorded), then its checkout.session.completed."""
    subscription = load_event("customer_subscription_updated_active.json", membership=membership)["data"]["object"]
    stripe_at.expect_request("/v1/setup_intents/seti_1SXfixtureSetup001", method="GET").respond_with_json(
        recorded("setup_intent_succeeded.json", membership))
    stripe_at.expect_request("/v1/customers/cus_TUfixture0001", method="POST").respond_with_json(
        {"id": "cus_TUfixture0001", "object": "customer",
         "invoice_settings": {"default_payment_method": "pm_1SXfixtureNewCard1"}})
    stripe_at.expect_request(f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}", method="POST").respond_with_json(
        dict(subscription, default_payment_method="pm_1SXfixtureNewCard1"))
    post_event(client, load_event("checkout_session_completed_setup.json", membership=membership))


@pytest.fixture
def stripe_at(settings, httpserver: HTTPServer):
    settings.STRIPE_API_BASE = httpserver.url_for("/").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.OUTBOX_MAX_ATTEMPTS = 3
    return httpserver


@pytest.fixture
def member_with_customer(glow):
    tier, _, _ = glow
    tier.practice.automation_stage = AutomationStage.TIER_SYNC
    tier.practice.save()
    tier.processor_price_id = "price_1SXglowMonthly"
    tier.save()
    return MemberFactory(practice=tier.practice, first_name="Zelda", last_name="Quartermaine",
                         processor_customer_id="cus_TUfixture0001")


def enroll(member, tier, sub=""):
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="e",
                                  now=timezone.now(), processor_subscription_id=sub)
