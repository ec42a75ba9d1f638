"""Fixtures for the Square tests: a fresh fake per test and the app's settings aimed at it."""

import pytest

SIGNATURE_KEY = "test-square-signature-key"
NOTIFICATION_URL = "https://ledger.example/webhooks/square/"


@pytest.fixture
def square_fake(square_fake_class):
    fake = square_fake_class(signature_key=SIGNATURE_KEY, notification_url=NOTIFICATION_URL).start()
    yield fake
    fake.stop()
    assert fake.errors == [], f"the fake answered shapes the SDK does not describe: {fake.errors}"


@pytest.fixture
def square_env(settings, square_fake):
    settings.SQUARE_ACCESS_TOKEN = "EAAA-test-token"
    settings.SQUARE_API_BASE = square_fake.base_url
    settings.SQUARE_LOCATION_ID = square_fake.location_id
    settings.SQUARE_WEBHOOK_SIGNATURE_KEY = SIGNATURE_KEY
    settings.SQUARE_WEBHOOK_URL = NOTIFICATION_URL
    return square_fake


@pytest.fixture
def square(square_env):
    from integrations.processors.square import SquareProcessor

    return SquareProcessor.from_settings()
