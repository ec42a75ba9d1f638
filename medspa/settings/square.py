"""Square, the second payment processor (`integrations.processors.square`, README "Square"), each
from the environment like the rest (listed in .env.example):

- `SQUARE_ACCESS_TOKEN`: the seller's access token (sandbox or production);
- `SQUARE_ENVIRONMENT`: `sandbox` or `production` (which Square API the SDK talks to);
- `SQUARE_API_BASE`: another base URL (tests point the SDK at a local fake); empty: the environment's;
- `SQUARE_LOCATION_ID`: the Square location the subscriptions and invoices belong to;
- `SQUARE_WEBHOOK_SIGNATURE_KEY`: the webhook subscription's signature key;
- `SQUARE_WEBHOOK_URL`: the notification URL exactly as configured at Square (scheme, host, path,
  trailing slash) — the signature covers it, so it is never rebuilt from the request."""

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

SQUARE_ACCESS_TOKEN = env.str("SQUARE_ACCESS_TOKEN", default="square_demo_token")
SQUARE_ENVIRONMENT = env.str("SQUARE_ENVIRONMENT", default="sandbox")
if SQUARE_ENVIRONMENT not in ("sandbox", "production"):
    raise ImproperlyConfigured("SQUARE_ENVIRONMENT must be 'sandbox' or 'production'.")
SQUARE_API_BASE = env.str("SQUARE_API_BASE", default="")
SQUARE_LOCATION_ID = env.str("SQUARE_LOCATION_ID", default="L_DEMO")
SQUARE_WEBHOOK_SIGNATURE_KEY = env.str("SQUARE_WEBHOOK_SIGNATURE_KEY", default="square_demo_signature_key")
SQUARE_WEBHOOK_URL = env.str("SQUARE_WEBHOOK_URL", default="http://localhost:8000/webhooks/square/")

# The card page a Square practice's members save a card on (integrations.processors.square_cards):
# Square's Web Payments SDK tokenizes the card in the browser, so the page needs the seller's
# application id (`sandbox-sq0idb-…` in the sandbox, `sq0idp-…` in production) and loads the SDK
# from Square (sandbox: https://sandbox.web.squarecdn.com/v1/square.js, production:
# https://web.squarecdn.com/v1/square.js); `SQUARE_WEB_SDK_URL` replaces that address (tests serve a
# stand-in). `SQUARE_CARD_PAGE_DAYS`: how long a card page link works.
SQUARE_APPLICATION_ID = env.str("SQUARE_APPLICATION_ID", default="sandbox-sq0idb-demo")
SQUARE_WEB_SDK_URL = env.str("SQUARE_WEB_SDK_URL", default="")
SQUARE_CARD_PAGE_DAYS = env.int("SQUARE_CARD_PAGE_DAYS", default=7)
