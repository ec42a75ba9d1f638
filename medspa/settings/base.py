"""Settings shared by every environment. Every value comes from the environment (django-environ)
with a safe demo default; each one is listed in `.env.example`."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

SECRET_KEY = env.str("SECRET_KEY", default="demo-only-insecure-secret-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL (scheme + host) as the outside world sees it: signed webhooks (Twilio) and
# links in messages are built from it, never from what Django rebuilds behind a proxy.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "memberships.admin_config.StaffAdminConfig",  # django.contrib.admin on the two-factor admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "memberships",
    "billing",
    "integrations",
    "portal",
    "medspa.health",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "memberships.session_touch.SessionTouchMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "memberships.two_factor.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "medspa.urls"
WSGI_APPLICATION = "medspa.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "integrations.records.context.record_exceptions",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # `make run` has a web server and a worker (several processes) writing one file. WAL: readers
    # and the one writer do not block each other. IMMEDIATE: a transaction takes the write lock when
    # it begins, so two of them queue on the busy timeout instead of one failing at once with
    # "database is locked" when both try to turn a read lock into a write lock. The timeout (seconds)
    # is how long a writer waits for the other.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=20),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL",
    })
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Off: a kept connection is not checked with a `SELECT 1` round trip before each request's first
    # query. One that PostgreSQL dropped (a restart, a failover) fails the request that meets it —
    # webhook senders retry, the worker's due work stays in our tables — and Django closes it at that
    # request's end, so the next one connects afresh.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "memberships.auth.StaffBackend",  # ModelBackend, permissions in one query
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "memberships:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "memberships:login"

# Sign-in, two-factor, sessions, API tokens and security headers: medspa/settings/security.py.
from .security import *  # noqa: E402,F401,F403

# The member's page (portal.me): sign-in link minutes, idle minutes, links per address / client an hour.
PORTAL_LINK_MINUTES = env.int("PORTAL_LINK_MINUTES", default=15)
PORTAL_SESSION_IDLE_MINUTES = env.int("PORTAL_SESSION_IDLE_MINUTES", default=30)
PORTAL_LINK_PER_ADDRESS_PER_HOUR = env.int("PORTAL_LINK_PER_ADDRESS_PER_HOUR", default=3)
PORTAL_LINK_PER_IP_PER_HOUR = env.int("PORTAL_LINK_PER_IP_PER_HOUR", default=10)
# "Send me a link" requests (an address, a client address) and their links are deleted after this many days.
MEMBER_LINK_RETENTION_DAYS = env.int("MEMBER_LINK_RETENTION_DAYS", default=30)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="America/Los_Angeles")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "media"))

REST_FRAMEWORK = {
    # Token first: a request without credentials, or with an expired or revoked token, answers 401
    # with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "memberships.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "memberships.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Medspa membership ledger API",
    "DESCRIPTION": "Members, memberships, balances and redemptions. Staff only.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["memberships.api.IsStaffRole"],
    # Swagger UI served from our own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One schema name per choice set the API uses (fields named "kind" or "status" hold several).
    "ENUM_NAME_OVERRIDES": {
        "MembershipStatusEnum": "memberships.models.MembershipStatus",
        "ReservationStatusEnum": "memberships.models.ReservationStatus",
        "EventKindEnum": "memberships.models.EventKind",
        "ServiceKindEnum": "memberships.models.ServiceKind",
        "EntryKindEnum": "memberships.models.EntryKind",
        "RolloverRuleEnum": "memberships.models.RolloverRule",
        "BillingIntervalEnum": "memberships.models.BillingInterval",
    },
}

# Email: console by default for the demo; any EMAIL_URL (smtp://user:pass@host:587) in production.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="memberships@medspa.example")
# Seconds an SMTP connection waits (to connect, and for each answer) before giving up; Django's
# default waits for ever, holding the worker and its message.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- the ledger -----------------------------------------------------------------------------
LEDGER_CURRENCY = env.str("LEDGER_CURRENCY", default="usd")

# --- the payment processor ---------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="sk_test_demo")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="whsec_demo")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2025-10-29.clover")
STRIPE_PRORATION_BEHAVIOR = env.str("STRIPE_PRORATION_BEHAVIOR", default="none")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=1)
# How subscription items name a tier's price: "price" for Stripe; "plan" for local Stripe-compatible
# servers that model plans only. Tiers are created as plans with ids of our own (prefix + tier id).
STRIPE_ITEM_PRICE_PARAM = env.str("STRIPE_ITEM_PRICE_PARAM", default="price")
STRIPE_PLAN_ID_PREFIX = env.str("STRIPE_PLAN_ID_PREFIX", default="mbr-tier-")
STRIPE_CHECKOUT_SUCCESS_PATH = env.str("STRIPE_CHECKOUT_SUCCESS_PATH", default="/billing/card-saved/")
STRIPE_CHECKOUT_CANCEL_PATH = env.str("STRIPE_CHECKOUT_CANCEL_PATH", default="/billing/card-cancelled/")

# --- SMS --------------------------------------------------------------------------------------
SMS_BACKEND = env.str("SMS_BACKEND", default="console")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_API_BASE = env.str("TWILIO_API_BASE", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
# Seconds a Twilio call waits to connect and for the answer (the SDK's default waits for ever).
TWILIO_TIMEOUT_SECONDS = env.int("TWILIO_TIMEOUT_SECONDS", default=30)

# --- dunning ----------------------------------------------------------------------------------
DUNNING_PROCESSOR = env.str("DUNNING_PROCESSOR", default="integrations.processors.stripe.StripeProcessor")
DUNNING_RUN_EVERY_MINUTES = env.int("DUNNING_RUN_EVERY_MINUTES", default=5)
# The card-update link in a message: good while its case is open, for this many days (at most 7,
# whatever is set), and until a card is saved with it.
DUNNING_CARD_LINK_MAX_AGE_DAYS = env.int("DUNNING_CARD_LINK_MAX_AGE_DAYS", default=7)
# Retries a case gets from new cards the member saves (one per card, at most this many per case).
DUNNING_CARD_UPDATE_RETRIES = env.int("DUNNING_CARD_UPDATE_RETRIES", default=3)

# --- task queue (django-q2) ---------------------------------------------------------------------
# retry > timeout > the longest task, so a running task is never handed out twice; bounded
# attempts; failed tasks kept; missed schedules are not replayed in bulk (jobs compute what is due).
# Q_BROKER: "orm" (the database; one worker host) or "redis" (several worker hosts sharing one Redis
# and one PostgreSQL; every host runs the same `name` and SECRET_KEY, which sign the tasks). Redis
# has no delivery receipts, so `retry` does not apply there: a task that dies with its host is not
# handed out again — the due work is in our own tables, and the minute sweeps find it.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
Q_BROKER = env.str("Q_BROKER", default="orm").lower()
if Q_BROKER not in ("orm", "redis"):
    raise ImproperlyConfigured(f"Q_BROKER is orm or redis, not {Q_BROKER!r}")
_Q_WORKERS = env.int("Q_WORKERS", default=2)
Q_CLUSTER = {
    "name": "medspa",
    "workers": _Q_WORKERS,
    # A cluster pulls no more tasks than it has workers: the rest stay in the broker for the other
    # hosts, and a stopping cluster has little left to run (the drains hand theirs back at once).
    "queue_limit": _Q_WORKERS,
    "timeout": 120,
    "retry": 300,
    "max_attempts": 5,
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "sync": env.bool("Q_SYNC", default=False),
    "poll": 0.5,
    "log_level": env.str("Q_LOG_LEVEL", default="WARNING"),
}
if Q_BROKER == "redis":
    # A connection URI, as django-q2 takes it (redis-py's `from_url`). Unless the URI sets them,
    # connecting and each reply time out after 5 s (above the broker's 1 s blocking pop), so a web
    # request that queues a task never hangs on an unreachable Redis (the sweep picks its work up).
    _redis_timeouts = [f"{option}=5" for option in ("socket_connect_timeout", "socket_timeout")
                       if f"{option}=" not in REDIS_URL]
    Q_CLUSTER["redis"] = REDIS_URL + ("&" if "?" in REDIS_URL else "?") + "&".join(_redis_timeouts) \
        if _redis_timeouts else REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A 4xx is one warning line, without the traceback Django attaches to a 403 or a 404.
    "filters": {"client_errors_on_one_line": {"()": "medspa.log.ClientErrorsOnOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["client_errors_on_one_line"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # django-q logs every enqueued and processed task at INFO: too much beside the app's own lines.
    # "django": through the root's handler only (Django's own console handler, on with DEBUG, would
    # print each of its lines a second time).
    "loggers": {"django": {"handlers": [], "level": LOG_LEVEL},
                "django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"},
                "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")}},
}

# --- health check (GET /healthz) -------------------------------------------------------------------
# 503 when the worker's last heartbeat (a task scheduled every minute) is older than this.
HEALTHZ_WORKER_MAX_AGE_SECONDS = env.int("HEALTHZ_WORKER_MAX_AGE_SECONDS", default=180)

# --- outbox ----------------------------------------------------------------------------------------
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_BACKOFF_BASE_SECONDS = env.int("OUTBOX_BACKOFF_BASE_SECONDS", default=30)
OUTBOX_BACKOFF_MAX_SECONDS = env.int("OUTBOX_BACKOFF_MAX_SECONDS", default=6 * 3600)
# A member message (SMS, email) marked as being handed to its provider for longer than this, with no
# worker still on it, is recorded as "may have been sent" and not sent again by itself.
OUTBOX_SENDING_TIMEOUT_SECONDS = env.int("OUTBOX_SENDING_TIMEOUT_SECONDS", default=900)
# A drain begins no new delivery after this long (the next run goes on): with the one in hand (up to
# TWILIO_TIMEOUT_SECONDS), it must end below Q_CLUSTER["timeout"], which ends the worker mid-send.
OUTBOX_SWEEP_SECONDS = env.int("OUTBOX_SWEEP_SECONDS", default=60)

# --- webhook inbox ---------------------------------------------------------------------------------
# An event whose object is not known yet is retried with backoff for about four days (Stripe itself
# retries for three), then marked failed for a manager.
INBOX_MAX_ATTEMPTS = env.int("INBOX_MAX_ATTEMPTS", default=25)
INBOX_RETRY_BASE_SECONDS = env.int("INBOX_RETRY_BASE_SECONDS", default=15)
INBOX_RETRY_MAX_SECONDS = env.int("INBOX_RETRY_MAX_SECONDS", default=12 * 3600)
# A backlog sweep stops after this long (must stay below Q_CLUSTER["timeout"]); the next run goes on.
INBOX_SWEEP_SECONDS = env.int("INBOX_SWEEP_SECONDS", default=60)
# Events taken and applied per transaction by one worker's sweep.
INBOX_BATCH_SIZE = env.int("INBOX_BATCH_SIZE", default=200)
# Each web process queues at most one inbox drain task this often (0: one task per webhook).
INBOX_TRIGGER_SECONDS = env.float("INBOX_TRIGGER_SECONDS", default=0.5)
# Full processor and record payloads are kept this many days, then reduced to ids and outcome (daily).
INBOX_RETENTION_DAYS = env.int("INBOX_RETENTION_DAYS", default=400)

# --- import and reconciliation --------------------------------------------------------------------
# Phone numbers in imported spreadsheets without a country code are read in this region (ISO code).
IMPORT_PHONE_REGION = env.str("IMPORT_PHONE_REGION", default="US")
# How a spreadsheet column of dates like 03/04/2026 is read when none of its dates settles it (no
# 13/04 or 04/13): "mdy" (month/day) or "dmy" (day/month). Default: month/day for a US region,
# day/month elsewhere. A manager can choose per import; the check says which was used.
IMPORT_DATE_ORDER = env.str("IMPORT_DATE_ORDER", default="mdy" if IMPORT_PHONE_REGION == "US" else "dmy").lower()
if IMPORT_DATE_ORDER not in ("mdy", "dmy"):
    raise ImproperlyConfigured(f"IMPORT_DATE_ORDER is mdy or dmy, not {IMPORT_DATE_ORDER!r}")
# Largest spreadsheet a manager may upload (bytes).
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
# An uploaded spreadsheet (contact details, often clinical notes) is kept this many days, then its file
# is emptied by a daily job; the batch's counts, outcome and report stay. At least 1.
IMPORT_FILE_RETENTION_DAYS = env.int("IMPORT_FILE_RETENTION_DAYS", default=30)
if IMPORT_FILE_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(f"IMPORT_FILE_RETENTION_DAYS is 1 or more, not {IMPORT_FILE_RETENTION_DAYS}")
# Hour (server time zone) of the nightly reconciliation schedule.
RECONCILE_NIGHTLY_HOUR = env.int("RECONCILE_NIGHTLY_HOUR", default=3)

# --- the record (EHR) ---------------------------------------------------------------------------
# Per practice: Practice.record_adapter (builtin / webhook / fhir / zenoti), record_config, and
# record_webhook_secret. These are the shared knobs.
# Record credentials (webhook secret, api_key/token in record_config) are encrypted at rest with
# these Fernet keys, comma-separated: the first encrypts, every one decrypts (rotation: put the new
# key first, run `manage.py rotate_field_encryption`, then drop the old one). Empty: a key derived
# from SECRET_KEY (the demo only: production refuses to start without it).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
# Outbound record/FHIR URLs must be https and resolve to public addresses (SSRF); true lifts both
# rules for a lab or a record server on this machine.
RECORD_ALLOW_PRIVATE_URLS = env.bool("RECORD_ALLOW_PRIVATE_URLS", default=False)
# Zenoti webhooks may still carry the practice's secret as ?token= in the URL (webhooks set up
# before the X-Medspa-Token header); false refuses it once every webhook sends the header.
ZENOTI_URL_TOKEN_ALLOWED = env.bool("ZENOTI_URL_TOKEN_ALLOWED", default=True)
RECORD_HTTP_TIMEOUT_SECONDS = env.float("RECORD_HTTP_TIMEOUT_SECONDS", default=10.0)
# Honour HTTP(S)_PROXY for calls to the record (off: local records are never proxied).
RECORD_HTTP_TRUST_ENV = env.bool("RECORD_HTTP_TRUST_ENV", default=False)
# Our own identifier systems in FHIR records (Patient, Account, Flag identifiers) start with this.
RECORD_FHIR_IDENTIFIER_BASE = env.str("RECORD_FHIR_IDENTIFIER_BASE", default="https://medspa.example")

from .joining import *  # noqa: E402,F401,F403  (joining online: its own small module)
from .square import *  # noqa: E402,F401,F403  (Square, the second processor: its own small module)
from .staff_time import *  # noqa: E402,F401,F403  (the dashboard's staff hours saved: its own small module)
from .group_figures import *  # noqa: E402,F401,F403  (the group dashboard's refresh: its own small module)
