"""Production refuses to start on the demo's public secrets, test keys and a console SMS backend, and
starts with real ones; HSTS covers subdomains and asks for preload; `check --deploy` is clean."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL = {
    "SECRET_KEY": "x8Jq2mZ0vR5tW9yB3nC7kL1pD4fG6hS8aQ2wE5rT7yU9iO0pLkJ",
    "STRIPE_WEBHOOK_SECRET": "whsec_3f9a0c1d2e",
    "STRIPE_SECRET_KEY": "sk_live_51Hx0example",
    "SMS_BACKEND": "twilio",
    "TWILIO_AUTH_TOKEN": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "PUBLIC_BASE_URL": "https://members.glow.example",
    "EMAIL_URL": "smtp://mailer:pw@smtp.glow.example:587",
    "ALLOWED_HOSTS": "members.glow.example",
    "FIELD_ENCRYPTION_KEYS": "q0J8lzM1sYh3vD6xW2nE9kT4bR7cF5aU0iO1pL8mG3E=",
}
CLEARED = {*REAL, "DJANGO_SETTINGS_MODULE", "ALLOW_TEST_KEYS", "CHART_FRAME_ANCESTORS", "SECURE_HSTS_SECONDS",
           "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT", "SECURE_COOKIES"}


def _run(extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(extra, DJANGO_SETTINGS_MODULE="medspa.settings.production")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _load(extra: dict, code: str = "") -> subprocess.CompletedProcess:
    return _run(extra, "-c", "import django; django.setup()\n" + code)


def test_production_refuses_the_demo_defaults_and_names_each_missing_value():
    result = _load({})
    assert result.returncode != 0
    for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PUBLIC_BASE_URL", "EMAIL_URL", "STRIPE_SECRET_KEY",
                 "SMS_BACKEND"):
        assert name in result.stderr


def test_production_starts_with_real_values_and_asks_for_the_twilio_token_with_twilio():
    assert _load(REAL).returncode == 0
    twilio = _load({**REAL, "TWILIO_AUTH_TOKEN": ""})
    assert twilio.returncode != 0 and "TWILIO_AUTH_TOKEN" in twilio.stderr


def test_a_stripe_test_key_or_the_console_sms_backend_is_refused_unless_allowed():
    test_key = _load({**REAL, "STRIPE_SECRET_KEY": "sk_test_51Hx0example"})
    assert test_key.returncode != 0 and "STRIPE_SECRET_KEY" in test_key.stderr and "ALLOW_TEST_KEYS" in test_key.stderr
    restricted_test_key = _load({**REAL, "STRIPE_SECRET_KEY": "rk_test_51Hx0example"})
    assert restricted_test_key.returncode != 0 and "STRIPE_SECRET_KEY" in restricted_test_key.stderr
    console = _load({**REAL, "SMS_BACKEND": "console"})
    assert console.returncode != 0 and "SMS_BACKEND" in console.stderr
    staging = {**REAL, "STRIPE_SECRET_KEY": "sk_test_51Hx0example", "SMS_BACKEND": "console", "ALLOW_TEST_KEYS": "true"}
    assert _load(staging).returncode == 0


def test_record_credentials_need_their_own_encryption_key():
    """Without FIELD_ENCRYPTION_KEYS the key would be derived from SECRET_KEY: rotating that key (after
    a leak) would lose every stored record credential, and one leaked secret would open both."""
    for value in ("", "not-a-fernet-key"):
        result = _load({**REAL, "FIELD_ENCRYPTION_KEYS": value})
        assert result.returncode != 0 and "FIELD_ENCRYPTION_KEYS" in result.stderr


def test_a_short_or_repetitive_secret_key_is_refused():
    for key in ("k" * 60, "short-but-random-Xy81"):
        result = _load({**REAL, "SECRET_KEY": key})
        assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_hsts_covers_subdomains_and_asks_for_preload():
    result = _load(REAL, "from django.conf import settings as s\n"
                         "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["31536000", "True", "True"]


def test_only_https_origins_may_frame_the_chart_in_production():
    plain = _load({**REAL, "CHART_FRAME_ANCESTORS": "http://ehr.example.com"})
    assert plain.returncode != 0 and "CHART_FRAME_ANCESTORS" in plain.stderr
    assert _load({**REAL, "CHART_FRAME_ANCESTORS": "https://ehr.example.com"}).returncode == 0


def test_check_deploy_passes_with_no_warning(tmp_path):
    result = _run({**REAL, "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}"},
                  "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
