"""Helpers the benchmarks share: a fresh PostgreSQL database of their own, percentiles, and the CPU
that a measurement cost (its processes and their PostgreSQL backends, read from /proc)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable

from django.conf import settings
from django.core.management import call_command
from django.db import connections

_BASE_NAME: list[str] = []


def test_environment() -> None:
    """What a benchmark that drives pages through Django's test client needs (the test email backend,
    the template-rendered signal), set up once per process: `make bench` runs every benchmark in one
    process, and Django refuses a second setup_test_environment()."""
    from django.test import utils

    if not hasattr(utils._TestState, "saved_data"):
        utils.setup_test_environment()


def database_name(name: str) -> str:
    """The benchmark's own database: `bench_<x>` names are taken from BENCH_DATABASE_URL's database
    (`bench` by default, so `bench_ledger`; `bench_b` gives `bench_b_ledger`), so that several people
    can run benchmarks on one server without dropping each other's databases."""
    if not _BASE_NAME:
        _BASE_NAME.append(settings.DATABASES["default"]["NAME"] or "bench")
    base = _BASE_NAME[0]
    if name.startswith("bench_") and base != "bench" and not name.startswith(f"{base}_"):
        return f"{base}_{name[len('bench_'):]}"
    return name


def _admin_dsn() -> str:
    db = settings.DATABASES["default"]
    return (f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432} "
            f"user={db.get('USER') or 'postgres'} dbname=postgres")


def database_url(name: str) -> str:
    """A DATABASE_URL for `name` on the benchmark's server (for the processes a benchmark starts)."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


@contextmanager
def fresh_database(name: str, *, template: str | None = None):
    """Point the default connection at a new database `name`, migrated (or a copy of `template`, a
    database made by an enclosing `fresh_database`); drop it afterwards. Yields the name used."""
    import psycopg

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        raise RuntimeError("benchmarks run on PostgreSQL: set BENCH_DATABASE_URL")
    name = database_name(name)
    connections.close_all()  # a template must have no session open
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{database_name(template)}"' if template else ""))
    original = db["NAME"]
    db["NAME"] = name
    try:
        if template is None:
            call_command("migrate", verbosity=0, interactive=False)
        yield name
    finally:
        connections.close_all()
        db["NAME"] = original
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(samples: list[float], pct: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples: list[float]) -> str:
    return (f"p50 {percentile(samples, 50) * 1000:.2f} ms, p95 {percentile(samples, 95) * 1000:.2f} ms, "
            f"p99 {percentile(samples, 99) * 1000:.2f} ms, mean {statistics.mean(samples) * 1000:.2f} ms")


# --- CPU accounting --------------------------------------------------------------------------------

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()  # after "pid (comm) ": field 3 (state) is [0]


def cpu_ticks(pid: int, *, thread: int | None = None) -> int | None:
    """utime + stime of a process (all its threads), or of one thread, in clock ticks; None when
    it is gone."""
    fields = _stat_fields(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    return None if fields is None else int(fields[11]) + int(fields[12])


def process_tree(root: int) -> list[int]:
    """`root` and its living descendants (a gunicorn master and its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(f"/proc/{entry}/stat")
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _machine_ms() -> float:
    """CPU time the whole machine spent busy (every core), from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) * _TICK_MS


def _local_ports(pids: Iterable[int]) -> set[int]:
    """The local TCP ports of the sockets these processes hold (a backend's `client_port`)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


class CpuMeter:
    """CPU spent between start and stop by some processes and by the PostgreSQL backends serving
    them (PostgreSQL runs on this machine): utime + stime from /proc/<pid>/stat. The backends are
    those of `db_name` whose client socket belongs to one of the processes. A background thread
    samples every `interval` seconds, so a process or backend that ends before `stop` still counts
    up to its last sample; callers keep their processes (and connections) alive until `stop` for
    an exact figure. Work done in the measuring process itself counts for its main thread only (the
    sampling thread is not the benchmark). The machine's whole busy time is kept beside it, so a
    noisy neighbour shows."""

    def __init__(self, db_name: str, pids: Iterable[int] | Callable[[], Iterable[int]] | None = None,
                 *, interval: float = 0.2):
        self.db_name = db_name
        self._pids = pids if callable(pids) else (lambda fixed=list(pids or [os.getpid()]): fixed)
        self.interval = interval
        self._first: dict[tuple[str, int], int] = {}
        self._last: dict[tuple[str, int], int] = {}
        self._owned: dict[int, bool] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn = None
        self._started = False
        self.process_ms = self.backend_ms = self.machine_ms = self.wall_s = 0.0
        self.processes = self.backends = 0

    # -- sampling
    def _read(self, kind: str, pid: int, thread: int | None = None) -> None:
        ticks = cpu_ticks(pid, thread=thread)
        if ticks is None:
            return
        key = (kind, pid)
        # Seen at the start: counted from there; appeared later: its whole life is in the window.
        self._first.setdefault(key, ticks if not self._started else 0)
        self._last[key] = ticks

    def _sample(self) -> None:
        with self._lock:
            pids = list(self._pids())
            me = os.getpid()
            for pid in pids:
                self._read("process", pid, threading.main_thread().native_id if pid == me else None)
            rows = self._conn.execute(
                "SELECT pid, client_port FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", [self.db_name]).fetchall()
            unknown = [(pid, port) for pid, port in rows if pid not in self._owned]
            if unknown:
                ports = _local_ports(pids)
                for pid, port in unknown:
                    self._owned[pid] = port in ports
            for pid, _ in rows:
                if self._owned[pid]:
                    self._read("backend", pid)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception:  # a sample lost (a process gone mid-read) is taken again next time
                pass

    def start(self) -> "CpuMeter":
        import psycopg

        self._conn = psycopg.connect(_admin_dsn(), autocommit=True)
        self._sample()
        self._started = True
        self._machine0, self._wall0 = _machine_ms(), time.perf_counter()
        if self.interval:
            self._thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> "CpuMeter":
        self.wall_s = time.perf_counter() - self._wall0
        self.machine_ms = _machine_ms() - self._machine0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self._conn.close()
        totals = {"process": 0, "backend": 0}
        counts = {"process": 0, "backend": 0}
        for key, last in self._last.items():
            totals[key[0]] += last - self._first[key]
            counts[key[0]] += 1
        self.process_ms, self.backend_ms = totals["process"] * _TICK_MS, totals["backend"] * _TICK_MS
        self.processes, self.backends = counts["process"], counts["backend"]
        return self

    # -- results
    @property
    def total_ms(self) -> float:
        return self.process_ms + self.backend_ms

    def per_item(self, n: int) -> float:
        return self.total_ms / n if n else float("nan")

    def describe(self, n: int, unit: str = "item") -> str:
        """'1.23 CPU ms/item (0.80 in 2 processes + 0.43 in 2 PostgreSQL backends); machine 1.7 of 2 cores busy'"""
        if not n:
            return "no items"
        cores = os.cpu_count() or 1
        return (f"{self.total_ms / n:.2f} CPU ms/{unit} ({self.process_ms / n:.2f} in {self.processes} "
                f"process{'es' if self.processes != 1 else ''} + {self.backend_ms / n:.2f} in {self.backends} "
                f"PostgreSQL backend{'s' if self.backends != 1 else ''}); machine "
                f"{self.machine_ms / 1000 / self.wall_s if self.wall_s else 0:.1f} of {cores} cores busy, "
                f"{self.total_ms / 1000 / self.wall_s if self.wall_s else 0:.1f} of them ours")


@contextmanager
def cpu_meter(db_name: str | None = None, pids: Iterable[int] | Callable[[], Iterable[int]] | None = None,
              *, interval: float = 0.2):
    """Measure the CPU of `pids` (default: this process's main thread) and of their backends on
    `db_name` (default: the current database) over the block:

        with cpu_meter(name, [p.pid for p in workers]) as cpu:
            ...
        print(cpu.describe(n, "renewal"))     # process_ms, backend_ms, total_ms after the block
    """
    meter = CpuMeter(db_name or settings.DATABASES["default"]["NAME"], pids, interval=interval)
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()
