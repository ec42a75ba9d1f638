"""Production refuses to start on the demo's public secrets, and starts with real ones."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL = {
    "SECRET_KEY": "k" * 60,
    "STRIPE_WEBHOOK_SECRET": "whsec_3f9a0c1d2e",
    "PUBLIC_BASE_URL": "https://members.glow.example",
    "EMAIL_URL": "smtp://mailer:pw@smtp.glow.example:587",
    "ALLOWED_HOSTS": "members.glow.example",
}


def _load(extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in {*REAL, "DJANGO_SETTINGS_MODULE", "SMS_BACKEND", "TWILIO_AUTH_TOKEN"}}
    env.update(extra, DJANGO_SETTINGS_MODULE="medspa.settings.production")
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_the_demo_defaults_and_names_each_missing_value():
    result = _load({})
    assert result.returncode != 0
    for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PUBLIC_BASE_URL", "EMAIL_URL"):
        assert name in result.stderr


def test_production_starts_with_real_values_and_asks_for_the_twilio_token_with_twilio():
    assert _load(REAL).returncode == 0
    twilio = _load({**REAL, "SMS_BACKEND": "twilio"})
    assert twilio.returncode != 0 and "TWILIO_AUTH_TOKEN" in twilio.stderr
