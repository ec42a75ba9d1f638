from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import EMAIL_CONFIG, PUBLIC_BASE_URL, SECRET_KEY, SMS_BACKEND, STRIPE_WEBHOOK_SECRET, TWILIO_AUTH_TOKEN, env

DEBUG = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# A load balancer's health probe over plain HTTP gets the answer, not a redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _refuse_demo_values() -> None:
    """Production never starts on the demo's public defaults: anyone could sign Stripe events or
    card-update links with them."""
    problems = []
    if SECRET_KEY.startswith("demo-") or len(SECRET_KEY) < 40:
        problems.append("SECRET_KEY (a random string of 50 characters or more)")
    if not STRIPE_WEBHOOK_SECRET.startswith("whsec_") or STRIPE_WEBHOOK_SECRET == "whsec_demo":
        problems.append("STRIPE_WEBHOOK_SECRET (the endpoint's signing secret from the Stripe dashboard)")
    if PUBLIC_BASE_URL.startswith("http://127.0.0.1") or PUBLIC_BASE_URL.startswith("http://localhost"):
        problems.append("PUBLIC_BASE_URL (the https address members and Twilio reach)")
    if SMS_BACKEND == "twilio" and not TWILIO_AUTH_TOKEN:
        problems.append("TWILIO_AUTH_TOKEN (with SMS_BACKEND=twilio)")
    if EMAIL_CONFIG.get("EMAIL_BACKEND", "").endswith("console.EmailBackend"):
        problems.append("EMAIL_URL (an smtp:// address; the console backend sends nothing)")
    if problems:
        raise ImproperlyConfigured("Production settings need real values for: " + "; ".join(problems) + ".")


_refuse_demo_values()
