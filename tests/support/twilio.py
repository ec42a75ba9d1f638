"""Twilio played by a local HTTP server (pytest-httpserver) answering with the documented Message
resource and error bodies (tests/fixtures/twilio), and Twilio's signed webhooks."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from twilio.request_validator import RequestValidator

FIXTURES = Path(__file__).parent.parent / "fixtures" / "twilio"
SID = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def twilio(settings, httpserver):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = SID
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE = httpserver.url_for("/")
    return httpserver


def post_signed(client, path, params, *, token=None, signature=None):
    """POST `params` to one of our Twilio webhooks, signed as Twilio signs (with our auth token, or
    `token`), or with the `signature` given."""
    url = settings.PUBLIC_BASE_URL + path
    signature = signature or RequestValidator(token or settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)
