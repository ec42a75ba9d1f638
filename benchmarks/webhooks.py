"""Webhook ingest under gunicorn on PostgreSQL, beside a bare ceiling in the same run, then the
workers draining the backlog.

16 concurrent senders POST signed Stripe events — recorded bodies of several types and sizes
(`invoice.paid` first and renewal-with-prorations, `invoice.paid` for a subscription update,
`invoice.payment_failed`, `customer.subscription.updated`: 4.7–8 KB), 10% of them duplicates of
events already sent — to gunicorn, while a worker process drains the inbox as they arrive (the
`python -m benchmarks._drain` loop around the function the django-q task runs). Twice, each on its
own copy of the same seed and through the same gunicorn setup and Django stack:

- ceiling: `/bench/ceiling/stripe/` (benchmarks/_ceiling_urls.py) — verify the signature, one
  `INSERT … ON CONFLICT DO NOTHING`, nothing else;
- ours: `/webhooks/stripe/`.

For each: requests/s, p50/p95/p99 latency, and CPU ms per request of the gunicorn processes plus
their PostgreSQL backends (from /proc; the worker's CPU is shown apart). The two are measured in
turn BENCH_WEBHOOK_ROUNDS (2) times each, and ours is given as a ratio of the ceiling from each
side's best round (a busy machine only ever makes a figure worse). Then worker processes drain what is left of our backlog, and we check every
event was applied exactly once (one refill per cycle-opening invoice, nothing failed).

CONN_HEALTH_CHECKS (environment) is passed to gunicorn as set, to compare with and without.

Goal: ≥ 500 events/s accepted with p99 ≤ 50 ms; every event processed once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

SENDERS = int(os.environ.get("BENCH_WEBHOOK_SENDERS", "16"))
EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "3000"))
MEMBERSHIPS = int(os.environ.get("BENCH_WEBHOOK_MEMBERSHIPS", "300"))
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "3"))
DRAIN_WORKERS = int(os.environ.get("BENCH_DRAIN_WORKERS", "2"))
# 0: stop after the ingest (no backlog drain, no exactly-once check) — for comparing ingest alone.
DRAIN_BACKLOG = os.environ.get("BENCH_WEBHOOK_DRAIN", "1") != "0"
# Ceiling and ours measured in turn this many times each; the summary takes each side's best.
ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", "2"))
DUPLICATE_SHARE = 0.10
SECRET = "whsec_bench_webhooks"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "stripe"
FIXTURE_SUBSCRIPTION = "sub_1SXfixtureGlow0001"
# (recorded event, share of the events)
MIX = [
    ("invoice_paid_first.json", 45),
    ("invoice_paid_renewal_with_prorations.json", 15),
    ("invoice_paid_subscription_update.json", 10),
    ("invoice_payment_failed_legacy_hard.json", 10),
    ("customer_subscription_updated_active.json", 20),
]
OURS_PATH = "/webhooks/stripe/"
CEILING_PATH = "/bench/ceiling/stripe/"


def _setup() -> list[tuple[int, str]]:
    from django.utils import timezone

    from memberships import services
    from memberships.models import Member
    from tests.factories import PracticeFactory, glow_tier

    now = timezone.now()
    practice = PracticeFactory(slug="bench-webhooks")
    tier = glow_tier(practice)[0]
    out = []
    for i in range(MEMBERSHIPS):
        member = Member.objects.create(practice=practice, member_number=f"W{i}", first_name="Bench", last_name=str(i))
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=f"e{i}",
                                   now=now, processor_subscription_id=f"sub_bench{i:05d}")
        out.append((m.pk, m.processor_subscription_id))
    return out


def _events(memberships: list[tuple[int, str]]) -> tuple[list[bytes], list[str]]:
    """The bodies, and the fixture each was made from."""
    texts = {name: (FIXTURES / name).read_text() for name, _ in MIX}
    names = [name for name, share in MIX for _ in range(share)]
    rng = random.Random(11)
    bodies, kinds = [], []
    for n in range(EVENTS):
        pk, sub = memberships[n % len(memberships)]
        name = rng.choice(names)
        event = json.loads(texts[name].replace(FIXTURE_SUBSCRIPTION, sub).replace('"ms_0"', f'"ms_{pk}"'))
        event["id"] = f"evt_bench{n:07d}"
        obj = event["data"]["object"]
        if obj.get("object") == "invoice":
            obj["id"] = f"in_bench{n:07d}"
            for line in obj["lines"]["data"]:
                line["invoice"] = obj["id"]
        bodies.append(json.dumps(event, indent=2).encode())  # as Stripe sends them
        kinds.append(name)
    return bodies, kinds


def _sign(body: bytes, ts: int) -> str:
    import hashlib
    import hmac

    return f"t={ts},v1={hmac.new(SECRET.encode(), f'{ts}.'.encode() + body, hashlib.sha256).hexdigest()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(port: int, database_url: str) -> subprocess.Popen:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.bench", DATABASE_URL=database_url,
               STRIPE_WEBHOOK_SECRET=SECRET, CONN_MAX_AGE="600")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "medspa.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(GUNICORN_WORKERS), "--worker-class", "gthread", "--threads", "4",
         "--keep-alive", "30", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{OURS_PATH}", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 405:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start: " + (proc.stderr.read() or b"").decode()[-2000:])


def _start_drain(database_url: str, *, follow: bool) -> subprocess.Popen:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.bench", DATABASE_URL=database_url,
               STRIPE_WEBHOOK_SECRET=SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._drain", "--seconds", "3600",
                             *(["--follow"] if follow else [])],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("a drain worker did not start")
    return proc


def _tell(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _done(proc: subprocess.Popen) -> dict[str, int]:
    return json.loads(proc.stdout.readline().split(" ", 1)[1].rsplit(" ", 1)[0])


def _stop(proc: subprocess.Popen, *, now: bool = False) -> None:
    if now:
        proc.terminate()
    else:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _send(url: str, sends: list[tuple[bytes, str]]) -> tuple[list[float], dict[int, int], float]:
    import aiohttp

    queue: asyncio.Queue = asyncio.Queue()
    for item in sends:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def sender(session):
        while True:
            try:
                body, header = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/json",
                                                             "Stripe-Signature": header}) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=SENDERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm every worker up with refused (unsigned) requests, which store nothing
        await asyncio.gather(*(session.post(url, data=b"{}") for _ in range(GUNICORN_WORKERS * 8)))
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
        elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


def _ingest(label: str, name: str, path: str, bodies: list[bytes], order: list[int]) -> dict:
    """Serve database `name` with gunicorn, a worker draining it, and POST every body to `path`."""
    from ._support import CpuMeter, database_url, percentile, process_tree

    url = database_url(name)
    worker = _start_drain(url, follow=True)
    port = _free_port()
    server = _start_gunicorn(port, url)
    try:
        ts = int(time.time())
        sends = [(bodies[i], _sign(bodies[i], ts)) for i in order]
        web = CpuMeter(name, process_tree(server.pid))
        work = CpuMeter(name, [worker.pid])
        _tell(worker, "go")
        web.start(), work.start()
        latencies, statuses, elapsed = asyncio.run(_send(f"http://127.0.0.1:{port}{path}", sends))
        web.stop(), work.stop()
    finally:
        server.terminate()
        server.wait(timeout=30)
    rate = len(sends) / elapsed
    print(f"{label}: {rate:,.0f} requests/s; p50 {percentile(latencies, 50) * 1000:.1f} ms, "
          f"p95 {percentile(latencies, 95) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms; statuses {statuses}", flush=True)
    print(f"  web: {web.describe(len(sends), 'request')}", flush=True)
    print(f"  (the worker meanwhile: {work.total_ms / 1000:.1f} CPU s with its backend)", flush=True)
    return {"rate": rate, "p99": percentile(latencies, 99), "cpu": web.per_item(len(sends)), "worker": worker,
            "url": url, "sends": len(sends)}


def run() -> None:
    from django.db import connections

    from ._support import fresh_database

    with fresh_database("bench_webhooks_seed") as seed:
        memberships = _setup()
        bodies, kinds = _events(memberships)
        order = list(range(len(bodies)))
        duplicates = random.Random(7).sample(range(len(order)), int(len(order) * DUPLICATE_SHARE))
        for i in duplicates:            # a duplicate goes somewhere after its original
            order.insert(random.Random(i).randint(i + 1, len(order)), i)
        sizes = sorted(len(b) for b in bodies)
        mix = ", ".join(f"{name.removesuffix('.json')} {kinds.count(name)}" for name, _ in MIX)
        print(f"{len(order)} POSTs ({len(duplicates)} duplicates) of {EVENTS} events from {SENDERS} senders to "
              f"gunicorn ({GUNICORN_WORKERS} gthread workers × 4 threads), one worker draining meanwhile; "
              f"bodies {sizes[0] / 1024:.1f}–{sizes[-1] / 1024:.1f} KB (median {sizes[len(sizes) // 2] / 1024:.1f}); "
              f"{mix}; CONN_HEALTH_CHECKS={os.environ.get('CONN_HEALTH_CHECKS', '(default)')}; "
              f"{ROUNDS} rounds, ceiling and ours in turn", flush=True)
        connections.close_all()

        results: dict[str, list[dict]] = {"ceiling": [], "ours": []}
        for round_ in range(1, ROUNDS + 1):
            with fresh_database("bench_webhooks_ceiling", template=seed) as name:
                ceiling = _ingest(f"ceiling (verify + one INSERT), round {round_}", name, CEILING_PATH, bodies,
                                  order)
                _stop(ceiling["worker"], now=True)
                results["ceiling"].append(ceiling)
            with fresh_database("bench_webhooks", template=seed) as name:
                ours = _ingest(f"ours (/webhooks/stripe/), round {round_}", name, OURS_PATH, bodies, order)
                results["ours"].append(ours)
                if round_ < ROUNDS or not DRAIN_BACKLOG:
                    _stop(ours["worker"], now=True)
                    continue
                _summary(results)
                _backlog(ours, kinds)
        if not DRAIN_BACKLOG:
            _summary(results)


def _summary(results: dict[str, list[dict]]) -> None:
    """Best of the rounds on each side (a busy machine only ever makes a figure worse)."""
    best = {side: {"rate": max(r["rate"] for r in runs), "p99": min(r["p99"] for r in runs),
                   "cpu": min(r["cpu"] for r in runs)} for side, runs in results.items()}
    ours, ceiling = best["ours"], best["ceiling"]
    print(f"best of {len(results['ours'])}: ours {ours['rate']:,.0f} requests/s, p99 {ours['p99'] * 1000:.1f} ms, "
          f"{ours['cpu']:.2f} CPU ms/request; ceiling {ceiling['rate']:,.0f} requests/s, p99 "
          f"{ceiling['p99'] * 1000:.1f} ms, {ceiling['cpu']:.2f} CPU ms/request", flush=True)
    print(f"ours/ceiling: {ours['rate'] / ceiling['rate']:.2f} of the rate, {ours['cpu'] / ceiling['cpu']:.2f}× the "
          f"CPU per request; goal ≥ 500 req/s with p99 ≤ 50 ms", flush=True)


def _backlog(ours: dict, kinds: list[str]) -> None:
    from integrations.models import InboundEvent, InboundStatus
    from memberships.models import LedgerEntry, Operation

    left = InboundEvent.objects.filter(status=InboundStatus.RECEIVED).count()
    helpers = [_start_drain(ours["url"], follow=False) for _ in range(DRAIN_WORKERS - 1)]
    began = time.perf_counter()
    _tell(ours["worker"], "finish")
    for h in helpers:
        _tell(h, "go")
    for proc in (ours["worker"], *helpers):
        _done(proc)
    drain = time.perf_counter() - began
    for proc in (ours["worker"], *helpers):
        _stop(proc)

    statuses = {s: InboundEvent.objects.filter(status=s).count() for s in InboundStatus.values}
    cycle_invoices = sum(1 for k in kinds if k in ("invoice_paid_first.json",
                                                   "invoice_paid_renewal_with_prorations.json"))
    refills = Operation.objects.filter(name="refill_entitlements").count()
    grants = LedgerEntry.objects.filter(kind="grant").count()
    print(f"backlog: {left} events left after ingest, processed by {DRAIN_WORKERS} workers in {drain:.1f} s "
          f"({left / drain:,.0f} events/s); inbox {statuses}; refills {refills}, grant entries {grants} "
          f"(expected {cycle_invoices} cycle-opening invoices × 2 benefits)", flush=True)
    ok = (statuses[InboundStatus.RECEIVED] == statuses[InboundStatus.FAILED] == 0
          and sum(statuses.values()) == EVENTS and refills == cycle_invoices and grants == 2 * cycle_invoices)
    print(f"exactly once: {'yes' if ok else 'NO'}", flush=True)
