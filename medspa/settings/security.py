"""Sign-in, two-factor, sessions, API tokens and security headers (imported by base.py). Every value
from the environment with a safe demo default, listed in `.env.example`; README, *Sign-in, sessions
and security headers*."""

import re

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()  # base.py has read .env into the environment already

# The client's address (login throttle, audit rows): behind N reverse proxies that each append to
# X-Forwarded-For, the Nth address from the right; 0 (nothing in front) ignores the header and uses
# the socket's address. One function reads it: memberships.client_ip.client_ip.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT is 0 or more, not {TRUSTED_PROXY_COUNT}")

# Failed-login throttling (django-axes, memberships.login_throttle): a username is locked after
# AXES_FAILURE_LIMIT failures from any addresses, an address after LOGIN_IP_FAILURE_LIMIT failures on
# any usernames, each for AXES_COOLOFF_HOURS after the last failure.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
LOGIN_IP_FAILURE_LIMIT = env.int("LOGIN_IP_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HANDLER = "memberships.login_throttle.LoginThrottleHandler"
AXES_CLIENT_IP_CALLABLE = "memberships.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "memberships.views.login.locked_out"
AXES_RESET_ON_SUCCESS = True

# Two-factor sign-in (django-otp, TOTP) for managers and the admin: the name authenticator apps show.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Membership ledger")
# The admin's device pages never show an authenticator's key or recovery codes (a superuser deletes
# a lost device there; they cannot copy one).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Staff sessions end after this many minutes without a request (the expiry moves on with the
# requests: memberships.session_touch saves a session at most once a minute for that, so an idle one
# ends within the last minute of the limit), and at browser close.
STAFF_SESSION_IDLE_MINUTES = env.int("STAFF_SESSION_IDLE_MINUTES", default=30)
SESSION_COOKIE_AGE = STAFF_SESSION_IDLE_MINUTES * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_SAVE_EVERY_REQUEST = False
# API tokens (memberships.auth): each expires this many days after it is issued; a manager can
# revoke one in the admin at once.
API_TOKEN_DAYS = env.int("API_TOKEN_DAYS", default=90)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# No page is framed by another site (X-Frame-Options and CSP frame-ancestors), except the compact
# chart panel, which the origins listed here (an EHR embedding it, e.g. https://ehr.example.com) may
# frame (memberships.framing).
X_FRAME_OPTIONS = "DENY"
CHART_FRAME_ANCESTORS = env.list("CHART_FRAME_ANCESTORS", default=[])
_not_origins = [o for o in CHART_FRAME_ANCESTORS if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?", o)]
if _not_origins:
    raise ImproperlyConfigured(f"CHART_FRAME_ANCESTORS lists origins (https://ehr.example.com), not {_not_origins!r}")

# Content-Security-Policy on every response (django-csp): scripts, styles, images and fonts from our
# own static files only — no inline script anywhere, no <style> element; style attributes only (chart
# legend swatches, bar widths). The API docs' Swagger UI is served from our static files as well.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# Static files are answered by WhiteNoise before django-csp and the framing middleware run: they get
# a policy of their own (some are HTML pages, e.g. Swagger UI's oauth2-redirect.html) — nothing runs,
# nothing frames them. A policy on a script or stylesheet changes nothing for the page using it.
STATIC_CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
                                  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _static_headers(headers, path, url) -> None:
    headers["Content-Security-Policy"] = STATIC_CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"


WHITENOISE_ADD_HEADERS_FUNCTION = _static_headers
