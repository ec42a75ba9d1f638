"""Run a real, throw-away sekmet-fhir (FHIR R4) server for tests (+ FhirClient, HookReceiver helpers).

    from tests.support.fhir_server import LocalFhirServer

    with LocalFhirServer() as srv:          # 127.0.0.1:<free port>, temp-dir SQLite, simulator off
        requests.get(f"{srv.base_url}/metadata")   # base_url == "http://127.0.0.1:<port>/fhir"

What it does (see NOTES.md for why):
  * writes a settings.yaml into a fresh temp dir and points SEKMET_CONFIG at it; the server's cwd is that temp
    dir too, so anything sekmet writes with a relative path (data/, keys/, reports/) lands there;
  * settings: host 127.0.0.1, the chosen port, base_url http://127.0.0.1:<port>/fhir (sekmet uses base_url for
    Location headers and Bundle fullUrls), db_path <tmp>/sekmet.db, data_dir <tmp>/data, simulator.enabled false;
    extra settings can be deep-merged in with `settings={...}` (e.g. {"subscriptions": {"notify_method": ...}});
  * runs uvicorn on `sekmet.main:app_factory --factory` (what `sekmet serve` runs) in a subprocess of its own
    process group, waits until GET {base_url}/metadata answers 200; a watchdog in the child stops it (and
    removes the temp dir) if the parent process dies without stop(), e.g. when pytest is SIGKILLed;
  * stop(): SIGTERM the group, wait, SIGKILL if it hangs, then delete the temp dir. Also runs at interpreter exit
    (atexit) if the caller forgot, so nothing is left behind.

LocalFhirServer and HookReceiver use only the standard library (the settings file is written as JSON, which is
valid YAML); FhirClient needs `requests`.
"""
from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_PYTHON = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python")
FHIR_PATH = "/fhir"  # sekmet's FHIR base path (router mounts /fhir and /fhir/{path}); no /R4 suffix


# Child bootstrap: `uvicorn <args>` plus a watchdog that shuts the server down (and removes its temp dir, which
# is its cwd) if the test process that started it dies without calling stop() - e.g. on SIGKILL.
_BOOT = r"""
import os, shutil, signal, sys, threading, time
parent = int(os.environ["FHIR_HARNESS_PARENT_PID"])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    # orphaned. Remove the temp dir first: uvicorn re-raises SIGTERM after its graceful shutdown, so no
    # `finally` of ours would run afterwards. Unlinking the open SQLite files is fine on POSIX.
    shutil.rmtree(os.getcwd(), ignore_errors=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)
threading.Thread(target=watch, daemon=True).start()
from uvicorn.main import main
main(args=sys.argv[1:], prog_name="uvicorn")
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class FhirServerError(RuntimeError):
    pass


class LocalFhirServer:
    """A sekmet-fhir server on 127.0.0.1:<free port> backed by a temp-dir SQLite file. Context manager."""

    def __init__(self, settings: dict[str, Any] | None = None, python: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 180.0,
                 log_inbound: bool = True, keep_tmp: bool = False):
        self.python = python or os.environ.get("SEKMET_PYTHON") or (
            DEFAULT_PYTHON if Path(DEFAULT_PYTHON).exists() else sys.executable)
        self.host = host
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.extra_settings = settings or {}
        self.log_inbound = log_inbound
        self.keep_tmp = keep_tmp
        self.port: int | None = None
        self.tmpdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._log_fh = None
        self._atexit_registered = False

    # ---------------- public ----------------

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """FHIR base, e.g. http://127.0.0.1:54321/fhir (no trailing slash)."""
        return f"{self.root_url}{FHIR_PATH}"

    @property
    def db_path(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "sekmet.db"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "LocalFhirServer":
        if self.running:
            return self
        self.tmpdir = Path(tempfile.mkdtemp(prefix="sekmet-fhir-"))
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        attempts = 1 if self.requested_port else 3  # a "free" port can be taken between probe and bind
        last_err: Exception | None = None
        for _ in range(attempts):
            self.port = self.requested_port or free_port(self.host)
            try:
                self._spawn_and_wait()
                return self
            except FhirServerError as e:
                last_err = e
                self._kill_proc()
        self.stop()
        raise last_err  # type: ignore[misc]

    def stop(self) -> None:
        self._kill_proc()
        if self._log_fh is not None:
            try:
                self._log_fh.close()
            except OSError:
                pass
            self._log_fh = None
        if self.tmpdir is not None and not self.keep_tmp:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def log_text(self) -> str:
        """The server's stdout+stderr so far (uvicorn + sekmet logging)."""
        if self.tmpdir is None or not (self.tmpdir / "server.log").exists():
            return ""
        return (self.tmpdir / "server.log").read_text(errors="replace")

    def __enter__(self) -> "LocalFhirServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalFhirServer {self.base_url if self.port else '(not started)'} running={self.running}>"

    # ---------------- internals ----------------

    def settings_dict(self) -> dict[str, Any]:
        assert self.tmpdir is not None and self.port is not None
        base = {
            "host": self.host,
            "port": self.port,
            "base_url": f"http://{self.host}:{self.port}{FHIR_PATH}",
            "data_dir": str(self.tmpdir / "data"),
            "db_path": str(self.db_path),
            "own_private_key_path": str(self.tmpdir / "keys" / "sekmet_private.pem"),
            "log_inbound": self.log_inbound,
            "simulator": {"enabled": False},
        }
        return _deep_merge(base, self.extra_settings)

    def _spawn_and_wait(self) -> None:
        assert self.tmpdir is not None
        cfg = self.tmpdir / "settings.yaml"
        cfg.write_text(json.dumps(self.settings_dict(), indent=2))  # JSON is YAML
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SEKMET_")}  # SEKMET_DB/_PORT/_BASE_URL would override our file
        env["SEKMET_CONFIG"] = str(cfg)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("NO_PROXY", "127.0.0.1,localhost")
        env["no_proxy"] = env["NO_PROXY"]
        if self._log_fh is not None:
            self._log_fh.close()
        self._log_fh = open(self.tmpdir / "server.log", "ab")
        env["FHIR_HARNESS_PARENT_PID"] = str(os.getpid())
        cmd = [self.python, "-c", _BOOT, "sekmet.main:app_factory", "--factory",
               "--host", self.host, "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.tmpdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log_fh, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"{self.base_url}/metadata"
        deadline = t0 + self.startup_timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FhirServerError(f"sekmet exited with code {self.proc.returncode} during startup:\n"
                                      f"{self.log_text()[-3000:]}")
            try:
                with opener.open(url, timeout=2) as r:
                    if r.status == 200:
                        self.startup_seconds = time.monotonic() - t0
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise FhirServerError(f"sekmet did not answer {url} within {self.startup_timeout}s:\n{self.log_text()[-3000:]}")

    def _kill_proc(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)  # own session/group: only our uvicorn (and any child) gets it
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)


FHIR_JSON = "application/fhir+json"


class FhirClient:
    """Thin requests wrapper: fhir.get("Patient", params=...) -> GET {base}/Patient?..."""

    def __init__(self, base_url: str):
        import requests  # only this helper needs requests; LocalFhirServer itself is stdlib-only
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # never send 127.0.0.1 traffic through an HTTP(S)_PROXY
        self.session.headers.update({"Accept": FHIR_JSON})

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, json=None, headers=None, **kw):
        h = dict(headers or {})
        if json is not None:
            h.setdefault("Content-Type", FHIR_JSON)
        return self.session.request(method, self.url(path), json=json, headers=h, timeout=60, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def search(self, rtype: str, params, strict: bool = True) -> list[dict]:
        """Search and return the matched resources only (drops search.mode=outcome/include entries).
        strict=True sends Prefer: handling=strict so a typo'd parameter is a 400, not 'match everything'."""
        h = {"Prefer": "handling=strict"} if strict else {}
        r = self.get(rtype, params=params, headers=h)
        r.raise_for_status()
        b = r.json()
        if b.get("resourceType") != "Bundle" or b.get("type") != "searchset":
            raise ValueError(f"not a searchset Bundle: {str(b)[:300]}")
        return [e["resource"] for e in b.get("entry", []) if e.get("search", {}).get("mode") == "match"]

    def close(self):
        self.session.close()


@dataclass
class HookCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class HookReceiver:
    """Tiny rest-hook endpoint (http.server in a daemon thread on 127.0.0.1) that records every POST/PUT.

        with HookReceiver() as hook:
            ... create a Subscription with channel.endpoint = hook.url("/ledger") ...
            calls = hook.wait_for(1, timeout=5)
    """

    def __init__(self, host: str = "127.0.0.1", status: int = 200):
        self.host = host
        self.status = status  # HTTP status answered to the FHIR server; set to 500 to simulate an outage
        self.calls: list[HookCall] = []
        self._cond = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with receiver._cond:
                    receiver.calls.append(HookCall(self.command, self.path, dict(self.headers.items()), body))
                    receiver._cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

            def log_message(self, *args):  # keep pytest output clean
                pass

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hook-receiver", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def wait_for(self, n: int = 1, timeout: float = 10.0, predicate=None) -> list[HookCall]:
        """Block until at least n recorded calls (matching predicate, if given); returns them (maybe fewer)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [c for c in self.calls if predicate is None or predicate(c)]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._cond.wait(left)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # quick manual check: python fhir_server.py
    with LocalFhirServer() as s:
        print(s, f"started in {s.startup_seconds:.2f}s")
        with urllib.request.urlopen(f"{s.base_url}/metadata") as r:
            cs = json.load(r)
        print(cs["resourceType"], cs.get("fhirVersion"), cs.get("software"))
