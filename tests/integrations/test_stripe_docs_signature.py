"""The webhook's `Stripe-Signature` as Stripe documents it (https://docs.stripe.com/webhooks#verify-manually):
"t=<timestamp>,v1=<signature>" where v1 is the HMAC-SHA256 of "<timestamp>.<raw body>" under the
endpoint's secret; while a secret is rolled, Stripe signs with the old and the new one and the header
carries one v1 per secret — any one matching is enough; the default tolerance is five minutes. The
endpoint checks it with the SDK's own `stripe.WebhookSignature.verify_header` (as `construct_event`
does), on the raw bytes."""

import hashlib
import hmac
import json
import time

import pytest

from integrations.models import InboundEvent
from tests.support.stripe_events import WEBHOOK_URL, load_event

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_secret"            # the endpoint's secret in the test settings
OLD_SECRET = "whsec_rolled_away"


def v1(body: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def post(client, body: bytes, header: str):
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def test_during_a_secret_roll_a_header_with_one_matching_v1_of_several_is_accepted(client):
    body = json.dumps(load_event("invoice_paid_first.json")).encode()
    t = int(time.time())
    header = f"t={t},v1={v1(body, OLD_SECRET, t)},v1={v1(body, SECRET, t)},v0=6ffbb59b2300aae63f272406069a9788"
    assert post(client, body, header).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_a_header_whose_v1_values_all_fail_or_whose_body_was_reserialized_is_refused(client):
    event = load_event("invoice_paid_first.json")
    body = json.dumps(event).encode()
    t = int(time.time())
    assert post(client, body, f"t={t},v1={v1(body, OLD_SECRET, t)}").status_code == 400
    reserialized = json.dumps(event, indent=2).encode()          # same JSON, other bytes
    assert post(client, reserialized, f"t={t},v1={v1(body, SECRET, t)}").status_code == 400
    assert post(client, body, f"v1={v1(body, SECRET, t)}").status_code == 400       # no timestamp
    assert InboundEvent.objects.count() == 0
