"""django-q2 settings that neither lose nor loop work."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_a_running_task_is_never_handed_out_twice():
    q = settings.Q_CLUSTER
    # retry > timeout > the longest task we run (the sweeps stop themselves earlier)
    assert q["retry"] > q["timeout"] > settings.INBOX_SWEEP_SECONDS + settings.INBOX_TRIGGER_SECONDS + 10


def test_attempts_are_bounded_and_failures_kept():
    q = settings.Q_CLUSTER
    assert 1 <= q["max_attempts"] <= 10
    assert q["ack_failures"] is True          # a failed task is acknowledged, not redelivered forever
    assert q.get("save_limit", 0) >= 0        # failures are always saved; successes up to the limit


def test_missed_schedules_are_not_replayed_in_bulk():
    assert settings.Q_CLUSTER["catch_up"] is False


def test_inbox_retries_outlast_stripe_own_retries():
    """Stripe retries for three days; an event waiting for its object is tried at least as long."""
    total, delay = 0, settings.INBOX_RETRY_BASE_SECONDS
    for attempt in range(1, settings.INBOX_MAX_ATTEMPTS):
        total += min(settings.INBOX_RETRY_MAX_SECONDS, delay * 2 ** (attempt - 1)) / 2   # jitter's lower bound
    assert total >= 3 * 24 * 3600


def test_a_cluster_pulls_no_more_tasks_than_it_has_workers():
    """The rest stay in the broker for the other hosts, and a stopping cluster has little to run."""
    assert settings.Q_CLUSTER["queue_limit"] == settings.Q_CLUSTER["workers"]


def _settings_with(**env) -> subprocess.CompletedProcess:
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "from django_q.brokers import get_broker; b = get_broker(); "
            "kw = getattr(getattr(b, 'connection', None), 'connection_pool', None); "
            "print(json.dumps({'broker': type(b).__name__, 'orm': settings.Q_CLUSTER.get('orm'), "
            "'connection': {k: kw.connection_kwargs.get(k) for k in ('host', 'port', 'db', 'socket_timeout', "
            "'socket_connect_timeout')} if kw else None}))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.test", **env))


def test_q_broker_redis_works_from_a_fresh_install():
    """`redis` is a declared dependency, and Q_BROKER=redis gives django-q2 its Redis broker on
    REDIS_URL, with timeouts so a request that queues a task never hangs on an unreachable Redis."""
    assert any(re.match(r"redis\b", r) for r in importlib.metadata.requires("medspa-ledger"))
    done = _settings_with(Q_BROKER="redis", REDIS_URL="redis://127.0.0.1:6390/3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "broker": "Redis", "orm": None,
        "connection": {"host": "127.0.0.1", "port": 6390, "db": 3, "socket_timeout": 5.0,
                       "socket_connect_timeout": 5.0}}
    done = _settings_with(Q_BROKER="redis", REDIS_URL="redis://127.0.0.1:6379/7?socket_timeout=9")
    assert json.loads(done.stdout.splitlines()[-1])["connection"]["socket_timeout"] == 9.0


def test_an_unknown_q_broker_is_refused_at_startup():
    done = _settings_with(Q_BROKER="rabbit")
    assert done.returncode != 0 and "Q_BROKER is orm or redis, not 'rabbit'" in done.stderr
