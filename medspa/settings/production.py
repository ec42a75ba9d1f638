from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import (
    CHART_FRAME_ANCESTORS, EMAIL_CONFIG, FIELD_ENCRYPTION_KEYS, PUBLIC_BASE_URL, SECRET_KEY, SMS_BACKEND,
    STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, TWILIO_AUTH_TOKEN, env,
)

DEBUG = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# A load balancer's health probe over plain HTTP gets the answer, not a redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# HSTS: a year, for every subdomain, and asking to be preloaded into browsers (hstspreload.org);
# lower SECURE_HSTS_SECONDS for a first deployment and raise it once HTTPS is known to work.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# A test Stripe key or a backend that sends no SMS, allowed only on purpose (a staging host).
ALLOW_TEST_KEYS = env.bool("ALLOW_TEST_KEYS", default=False)


def _refuse_demo_values() -> None:
    """Production never starts on the demo's public defaults: anyone could sign Stripe events or
    card-update links with them."""
    problems = []
    if SECRET_KEY.startswith("demo-") or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        problems.append("SECRET_KEY (a random string of 50 characters or more)")
    if not STRIPE_WEBHOOK_SECRET.startswith("whsec_") or STRIPE_WEBHOOK_SECRET == "whsec_demo":
        problems.append("STRIPE_WEBHOOK_SECRET (the endpoint's signing secret from the Stripe dashboard)")
    if PUBLIC_BASE_URL.startswith("http://127.0.0.1") or PUBLIC_BASE_URL.startswith("http://localhost"):
        problems.append("PUBLIC_BASE_URL (the https address members and Twilio reach)")
    if SMS_BACKEND == "twilio" and not TWILIO_AUTH_TOKEN:
        problems.append("TWILIO_AUTH_TOKEN (with SMS_BACKEND=twilio)")
    if EMAIL_CONFIG.get("EMAIL_BACKEND", "").endswith("console.EmailBackend"):
        problems.append("EMAIL_URL (an smtp:// address; the console backend sends nothing)")
    if not _fernet_keys(FIELD_ENCRYPTION_KEYS):
        problems.append("FIELD_ENCRYPTION_KEYS (Fernet keys for the record credentials, not derived from "
                        "SECRET_KEY: Fernet.generate_key())")
    if [origin for origin in CHART_FRAME_ANCESTORS if not origin.startswith("https://")]:
        problems.append("CHART_FRAME_ANCESTORS (https origins only)")
    if not ALLOW_TEST_KEYS:
        problems += _test_keys()
    if problems:
        raise ImproperlyConfigured("Production settings need real values for: " + "; ".join(problems) + ".")


def _fernet_keys(keys: list[str]) -> bool:
    """At least one key, and every one a Fernet key."""
    from cryptography.fernet import Fernet

    keys = [key.strip() for key in keys if key.strip()]
    try:
        return bool(keys) and all(Fernet(key.encode()) for key in keys)
    except ValueError:
        return False


def _test_keys() -> list[str]:
    """What only a test or demo setup uses: refused unless ALLOW_TEST_KEYS=true."""
    problems = []
    if STRIPE_SECRET_KEY.startswith(("sk_test_", "rk_test_")):
        problems.append("STRIPE_SECRET_KEY (a live key sk_live_… or rk_live_…, not a test key; "
                        "ALLOW_TEST_KEYS=true for a staging host)")
    if SMS_BACKEND != "twilio":
        problems.append(f"SMS_BACKEND (twilio; {SMS_BACKEND!r} sends no text message; "
                        "ALLOW_TEST_KEYS=true for a staging host)")
    return problems


_refuse_demo_values()
