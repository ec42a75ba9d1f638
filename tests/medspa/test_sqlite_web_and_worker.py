"""`make run` on its zero-setup default: a web process and a worker writing one SQLite file at the same
time, with the settings `make run` uses (medspa.settings.dev), on a real file whatever database the
suite itself runs on. The front desk enrolls and redeems and the processor's webhooks are stored,
while the worker delivers the outbox and processes the inbox: no "database is locked", nothing
failed, every webhook processed, every delivery done."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 30

def _env(db: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SQLITE_"))}
    env.update(DJANGO_SETTINGS_MODULE="medspa.settings.dev", DATABASE_URL=f"sqlite:///{db}", LOG_LEVEL="WARNING",
               # nothing leaves this machine: a processor call is refused at once, like Stripe being down
               STRIPE_API_BASE="http://127.0.0.1:9", STRIPE_MAX_NETWORK_RETRIES="0", SMS_BACKEND="console")
    return env


def _run(env, *args, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _report(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_web_and_worker_write_one_sqlite_file_at_once_without_a_lock_error(tmp_path):
    db = tmp_path / "db.sqlite3"
    env = _env(db)
    _run(env, "manage.py", "migrate", "--noinput", "-v0")
    _run(env, "-m", "tests.support.sqlite_sides", "setup")

    web_done = tmp_path / "web-done"
    sides = {
        name: subprocess.Popen([sys.executable, "-m", "tests.support.sqlite_sides", name, *extra], cwd=ROOT,
                               env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for name, extra in (("web", ["--members", str(MEMBERS)]), ("worker", ["--web-done", str(web_done)]))
    }
    try:
        for side in sides.values():
            assert side.stdout.readline().strip() == "ready", side.stderr.read()[-3000:]
        for side in sides.values():                    # both start together
            side.stdin.write("go\n")
            side.stdin.flush()
        outputs = {"web": sides["web"].communicate(timeout=600)}
        web_done.touch()                               # the worker works off what is left, then ends
        outputs["worker"] = sides["worker"].communicate(timeout=600)
    finally:
        for side in sides.values():
            if side.poll() is None:
                side.kill()
                side.wait()

    for name, (stdout, stderr) in outputs.items():
        assert sides[name].returncode == 0, f"{name}: {stderr[-3000:]}"
        assert "database is locked" not in stderr, f"{name}: {stderr[-3000:]}"
        assert "Traceback" not in stderr, f"{name}: {stderr[-3000:]}"
        assert _report(stdout)["errors"] == [], name
    web = _report(outputs["web"][0])["result"]
    assert web["enrolled"] == web["stored"] == MEMBERS and web["redeemed"] == 3 * MEMBERS

    state = _report(_run(env, "-m", "tests.support.sqlite_sides", "check").stdout)["result"]
    assert state["journal_mode"] == "wal"
    assert state["inbound"] == {"processed": MEMBERS}, state
    assert state["delivery_errors"] == [] and state["inbound_errors"] == [], state
    assert set(state["deliveries"]) <= {"delivered", "shadowed"}, state
    assert state["balances_match_entries"]


def test_make_run_settings_open_sqlite_for_a_web_process_and_a_worker(tmp_path):
    """The options themselves, as `make run` gets them."""
    code = ("import django, json; django.setup(); from django.conf import settings; from django.db import connection;"
            "c = connection.cursor(); c.execute('PRAGMA journal_mode'); mode = c.fetchone()[0];"
            "c.execute('PRAGMA busy_timeout'); busy = c.fetchone()[0];"
            "print(json.dumps([mode, busy, connection.transaction_mode]))")
    result = _run(_env(tmp_path / "db.sqlite3"), "-c", code)
    mode, busy_ms, transaction_mode = json.loads(result.stdout.strip().splitlines()[-1])
    assert (mode, transaction_mode) == ("wal", "IMMEDIATE")
    assert busy_ms >= 5000
