"""Recorded Stripe events (tests/fixtures/stripe/*.json, API 2025-10-29.clover shape unless the file
says otherwise), re-pointed at a test's membership and signed like Stripe signs them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from .webhook_signing import sign_payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
FIXTURE_SUBSCRIPTION = "sub_1SXfixtureGlow0001"
FIXTURE_MEMBERSHIP_REF = "ms_0"
WEBHOOK_URL = "/webhooks/stripe/"


def load_event(name: str, *, membership=None, subscription_ref: str | None = None, event_suffix: str = "") -> dict:
    """The recorded event, its subscription id and membership ref replaced by the test's own."""
    text = (FIXTURES / name).read_text()
    if membership is not None:
        text = text.replace(f'"{FIXTURE_MEMBERSHIP_REF}"', f'"ms_{membership.pk}"')
    if subscription_ref:
        text = text.replace(FIXTURE_SUBSCRIPTION, subscription_ref)
    event = json.loads(text)
    if event_suffix:
        event["id"] += event_suffix
    return event


def signed(event: dict, secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    return body, sign_payload(body, secret, timestamp)


def post_event(client, event: dict, *, secret: str = "whsec_test_secret", timestamp: int | None = None):
    """POST the event to our webhook view exactly as Stripe would."""
    body, header = signed(copy.deepcopy(event), secret, timestamp)
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def serve_stripe_reads(settings, httpserver, *, invoice_payments: str | None = None, charge: str | None = None):
    """Point the SDK at a local HTTP server answering the reads the adapter makes for a failed invoice
    with recorded Stripe bodies: `GET /v1/invoice_payments` (the current API: the invoice's payments,
    PaymentIntent expanded) and `GET /v1/charges/<id>`. Any other request gets the server's 500."""
    settings.STRIPE_API_BASE = httpserver.url_for("/").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    if invoice_payments:
        body = json.loads((FIXTURES / invoice_payments).read_text())
        httpserver.expect_request("/v1/invoice_payments", method="GET").respond_with_json(body)
    if charge:
        body = json.loads((FIXTURES / charge).read_text())
        httpserver.expect_request(f"/v1/charges/{body['id']}", method="GET").respond_with_json(body)
    return httpserver


def store_first_invoices(tier, n: int, *, tag: str, now) -> list:
    """`n` members enrolled on `tier`, each with its first paid invoice stored in the inbox (not yet
    processed): the backlog the worker tests kill or stop a worker in."""
    from integrations import inbox
    from memberships import services
    from tests.factories import MemberFactory

    memberships = []
    for i in range(n):
        member = MemberFactory(practice=tier.practice)
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=f"e{i}",
                                   now=now, processor_subscription_id=f"sub_{tag}{i}")
        event = load_event("invoice_paid_first.json", membership=m, subscription_ref=f"sub_{tag}{i}",
                           event_suffix=f"_{i}")
        event["data"]["object"]["id"] += f"_{i}"
        inbox.store_event(source="stripe", event=event, handled=True, now=now)
        memberships.append(m)
    return memberships
