"""localstripe (a local Stripe-compatible server) for end-to-end tests: one server per test
process on 127.0.0.1 with its store in memory, wiped before each test; the project's own Stripe
settings pointed at it."""

import pytest

from tests.support.localstripe_server import LocalStripe
from tests.support.stripe_recorded import member_with_customer, stripe_at  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def localstripe_server():
    with LocalStripe() as ls:
        yield ls


@pytest.fixture
def localstripe(localstripe_server):
    localstripe_server.flush()
    return localstripe_server


@pytest.fixture
def stripe_env(settings, localstripe):
    """The app's settings aimed at localstripe. Two of its gaps are configured around, not hidden:
    it models plans but not prices (items name the tier with `plan`), and it answers 500 to
    `proration_behavior` (left out here; Stripe gets the setting, default "none")."""
    settings.STRIPE_SECRET_KEY = localstripe.api_key
    settings.STRIPE_API_BASE = localstripe.api_base
    settings.STRIPE_ITEM_PRICE_PARAM = "plan"
    settings.STRIPE_PRORATION_BEHAVIOR = ""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return localstripe
