from .base import *  # noqa: F401,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SMS_BACKEND = "locmem"
STRIPE_WEBHOOK_SECRET = "whsec_test_secret"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AXES_ENABLED = True
# No test reaches the real Stripe: nothing listens on this port (tests that need a peer point the
# SDK at localstripe or a recorded-response server).
STRIPE_API_BASE = "http://127.0.0.1:9"
STRIPE_MAX_NETWORK_RETRIES = 0
# The record tests' servers (FHIR, Zenoti and webhook stand-ins) listen on 127.0.0.1 over http; the
# SSRF tests turn this off to see such URLs refused.
RECORD_ALLOW_PRIVATE_URLS = True
