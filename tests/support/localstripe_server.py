"""Run localstripe (PyPI ``localstripe==1.15.10``) for tests, safely.

    from localstripe_server import LocalStripe

    with LocalStripe() as ls:
        client = ls.make_client()                       # stripe.StripeClient
        cus = client.v1.customers.create({"metadata": {"member_ref": "m_1"}})
        ...
        ls.flush()                                      # wipe all objects

* Runs ``_localstripe_launcher.py`` in a **subprocess** (own event loop, no
  clash with pytest-asyncio / Django async bits / xdist workers).
* Listens on **127.0.0.1** only, on a kernel-chosen free port (bound by the
  child itself, port reported back through a file -> no port race).
* Store is **in memory** only (localstripe's pickling to
  /tmp/localstripe.pickle is disabled); pass ``pickle_dir=`` to redirect it.
* ``stop()`` sends SIGTERM, waits, then SIGKILLs only *its own* child pid.
  The child also exits by itself if the parent process disappears.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / '_localstripe_launcher.py'

# localstripe accepts any key that starts with "sk_" and is longer than 5 chars
DEFAULT_API_KEY = 'sk_test_localstripe_harness'


class LocalStripeError(RuntimeError):
    pass


class LocalStripe:
    def __init__(self, *, python: Optional[str] = None,
                 api_key: str = DEFAULT_API_KEY,
                 startup_timeout: float = 180.0,
                 pickle_dir: Optional[str] = None,
                 access_log: bool = False):
        self.python = python or sys.executable
        self.api_key = api_key
        self.startup_timeout = startup_timeout
        self.pickle_dir = pickle_dir
        self.access_log = access_log
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._tmpdir: Optional[str] = None
        self._log_fh = None

    # ------------------------------------------------------------ lifecycle
    @property
    def api_base(self) -> str:
        if self.port is None:
            raise LocalStripeError('LocalStripe is not started')
        return f'http://127.0.0.1:{self.port}'

    @property
    def log_path(self) -> Optional[Path]:
        return Path(self._tmpdir, 'localstripe.log') if self._tmpdir else None

    def read_log(self) -> str:
        p = self.log_path
        return p.read_text(errors='replace') if p and p.exists() else ''

    def start(self) -> 'LocalStripe':
        if self.proc is not None:
            return self
        self._tmpdir = tempfile.mkdtemp(prefix='localstripe-')
        port_file = os.path.join(self._tmpdir, 'port')
        cmd = [self.python, str(LAUNCHER), '--port-file', port_file,
               '--parent-pid', str(os.getpid())]
        if self.pickle_dir:
            cmd += ['--pickle-dir', self.pickle_dir]
        if self.access_log:
            cmd += ['--access-log']
        self._log_fh = open(self.log_path, 'wb')
        env = dict(os.environ)
        env.setdefault('PYTHONUNBUFFERED', '1')
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log_fh,
            stderr=subprocess.STDOUT, cwd=self._tmpdir, env=env)
        try:
            self._wait_ready(port_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, port_file: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalStripeError(
                    f'localstripe exited with {self.proc.returncode}:\n'
                    + self.read_log())
            if self.port is None and os.path.exists(port_file):
                self.port = int(Path(port_file).read_text().strip())
            if self.port is not None:
                try:
                    status, _ = self.request('GET', '/v1/customers',
                                             {'limit': '1'}, timeout=1.0)
                    if status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise LocalStripeError('localstripe did not answer within '
                               f'{self.startup_timeout}s:\n' + self.read_log())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self.port = None

    def __enter__(self) -> 'LocalStripe':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------- raw HTTP
    def request(self, method: str, path: str, params: Optional[dict] = None,
                *, timeout: float = 10.0, auth: bool = True):
        """A minimal HTTP call (no SDK) -> (status, parsed JSON or text)."""
        url = self.api_base + path
        data = None
        if params and method == 'GET':
            url += '?' + urllib.parse.urlencode(params)
        elif params is not None:
            data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if auth:
            req.add_header('Authorization', f'Bearer {self.api_key}')
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body or b'null')
        except ValueError:
            return status, body.decode(errors='replace')

    # ---------------------------------------------- localstripe-only admin
    def flush(self) -> None:
        """Delete every object (DELETE /_config/data). Registered webhooks
        survive a flush."""
        status, body = self.request('DELETE', '/_config/data', auth=False)
        if status != 200:
            raise LocalStripeError(f'flush failed: {status} {body}')

    def register_webhook(self, url: str, secret: str,
                         events: Optional[Iterable[str]] = None,
                         webhook_id: str = 'harness') -> None:
        """localstripe-only: POST /_config/webhooks/{id}. localstripe then
        POSTs each Event it creates (≈1 s later, signed ``t=..,v1=..`` with
        ``secret``) to ``url``. There is no /v1/webhook_endpoints API."""
        params = [('url', url), ('secret', secret)]
        for e in events or ():
            params.append(('events[]', e))
        data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(
            f'{self.api_base}/_config/webhooks/{webhook_id}', data=data,
            method='POST')
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 200:
                raise LocalStripeError(f'webhook config failed: {r.status}')

    # ------------------------------------------------------- SDK plumbing
    def make_client(self, **kwargs):
        """A ``stripe.StripeClient`` pointed at this server (stripe 16.x).
        Plain http:// works with the default (requests) http client."""
        import stripe
        kwargs.setdefault('max_network_retries', 0)
        return stripe.StripeClient(
            self.api_key, base_addresses={'api': self.api_base}, **kwargs)

    def configure_stripe_module(self):
        """Point the module-level (global) stripe config at this server and
        return a function that restores the previous values."""
        import stripe
        old = (stripe.api_key, stripe.api_base, stripe.max_network_retries)
        stripe.api_key = self.api_key
        stripe.api_base = self.api_base
        stripe.max_network_retries = 0

        def restore():
            stripe.api_key, stripe.api_base, stripe.max_network_retries = old
        return restore


if __name__ == '__main__':  # manual smoke test
    with LocalStripe(access_log=True) as ls:
        print('api_base', ls.api_base)
        print(ls.request('POST', '/v1/customers', {'metadata[ref]': 'x'}))
