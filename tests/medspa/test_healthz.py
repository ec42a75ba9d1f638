"""`GET /healthz`: 200 when the database answers and the worker's heartbeat is recent, 503 otherwise,
with a JSON body saying which part failed. No login, no member data, no audit row."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone
from django_q.models import Schedule

from medspa.health import selectors
from medspa.health.models import WorkerHeartbeat
from medspa.health.services import record_heartbeat
from medspa.health.tasks import beat
from memberships.models import AuditLog
from tests.medspa.test_production_settings import REAL, ROOT

pytestmark = pytest.mark.django_db


def _production_settings(*names):
    """The values medspa.settings.production gives (loaded in a process of its own, with real secrets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_"))}
    env.update(REAL, DJANGO_SETTINGS_MODULE="medspa.settings.production")
    code = ("import django, json; django.setup(); from django.conf import settings; "
            f"print(json.dumps([getattr(settings, n) for n in {list(names)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_healthy_when_the_database_answers_and_the_worker_beat_recently(client, settings):
    settings.HEALTHZ_WORKER_MAX_AGE_SECONDS = 180
    record_heartbeat(now=timezone.now() - timedelta(seconds=30))

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["worker"]["status"] == "ok" and body["worker"]["max_age_seconds"] == 180
    assert 30 <= body["worker"]["age_seconds"] < 60
    assert set(body) == {"status", "database", "worker"}
    assert set(body["worker"]) == {"status", "last_heartbeat", "age_seconds", "max_age_seconds"}


def test_unhealthy_without_any_heartbeat(client, settings):
    settings.HEALTHZ_WORKER_MAX_AGE_SECONDS = 180
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy", "database": "ok",
                               "worker": {"status": "missing", "last_heartbeat": None, "age_seconds": None,
                                          "max_age_seconds": 180}}


def test_unhealthy_when_the_last_heartbeat_is_older_than_the_setting(client, settings):
    settings.HEALTHZ_WORKER_MAX_AGE_SECONDS = 120
    record_heartbeat(now=timezone.now() - timedelta(seconds=121))

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok" and body["worker"]["status"] == "stale"
    assert body["worker"]["age_seconds"] >= 121 and body["worker"]["last_heartbeat"]


def test_unhealthy_when_the_database_does_not_answer(client, monkeypatch):
    record_heartbeat(now=timezone.now())

    def unreachable(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(selectors.WorkerHeartbeat.objects, "filter", unreachable)
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["database"] == "unreachable"
    assert body["worker"]["last_heartbeat"] is None


def test_no_login_and_no_audit_row_for_any_caller(client, front_desk):
    record_heartbeat(now=timezone.now())
    before = AuditLog.objects.count()

    assert client.get("/healthz").status_code == 200          # anonymous: no redirect to the login page
    client.force_login(front_desk)
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405
    assert AuditLog.objects.count() == before


def test_the_heartbeat_task_is_scheduled_every_minute_and_makes_the_check_healthy(client):
    schedule = Schedule.objects.get(func="medspa.health.tasks.beat")
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1 and schedule.repeats == -1
    assert client.get("/healthz").status_code == 503

    beat()
    beat()                                                    # safe to run twice: one row, moved on

    assert WorkerHeartbeat.objects.count() == 1
    assert client.get("/healthz").status_code == 200


def test_production_answers_the_probe_over_plain_http_instead_of_redirecting(client, settings):
    production = _production_settings("SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT")
    settings.SECURE_SSL_REDIRECT, settings.SECURE_REDIRECT_EXEMPT = production
    assert settings.SECURE_SSL_REDIRECT
    record_heartbeat(now=timezone.now())

    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301


def test_an_unhealthy_answer_is_not_logged_as_an_error(client, caplog):
    """A monitor probing every few seconds while the worker is down must not fill the log."""
    import logging

    from medspa.log import ClientErrorsOnOneLine

    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get("/healthz").status_code == 503
    shown = [r for r in caplog.records if r.name == "django.request" and ClientErrorsOnOneLine().filter(r)]
    assert shown == []
