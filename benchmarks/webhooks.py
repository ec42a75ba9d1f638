"""Webhook ingest under gunicorn on PostgreSQL, then the worker draining the backlog.

16 concurrent senders POST signed `invoice.paid` events (10% of them duplicates of events already
sent) to /webhooks/stripe/ served by gunicorn; we report requests/s and p50/p99 latency. Then
worker processes drain the inbox (the same function the django-q task runs) and we report how long
that took, and check every event was applied exactly once (one refill per invoice).

Goal: ≥ 500 events/s accepted with p99 ≤ 50 ms; every event processed once."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
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
DUPLICATE_SHARE = 0.10
SECRET = "whsec_bench_webhooks"
DB_NAME = "bench_webhooks"
ROOT = Path(__file__).resolve().parent.parent


def _setup() -> list[tuple[int, str]]:
    from django.utils import timezone

    from memberships import services
    from memberships.models import Member, Practice, Service, ServiceKind, Tier, TierBenefit

    now = timezone.now()
    practice = Practice.objects.create(name="Bench", slug="bench-webhooks")
    credit = Service.objects.create(practice=practice, name="Credit", code="credit", kind=ServiceKind.CREDIT)
    tier = Tier.objects.create(practice=practice, code="b", name="B", processor_name="Membership — B",
                               price_cents=19900)
    TierBenefit.objects.create(tier=tier, service=credit, quantity_per_cycle=5000)
    out = []
    for i in range(MEMBERSHIPS):
        member = Member.objects.create(practice=practice, member_number=f"W{i}", first_name="Bench", last_name=str(i))
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=f"e{i}",
                                   now=now, processor_subscription_id=f"sub_bench{i:05d}")
        out.append((m.pk, m.processor_subscription_id))
    return out


def _events(memberships: list[tuple[int, str]]) -> list[bytes]:
    template = json.loads((ROOT / "tests" / "fixtures" / "stripe" / "invoice_paid_first.json").read_text())
    bodies = []
    for n in range(EVENTS):
        pk, sub = memberships[n % len(memberships)]
        event = json.loads(json.dumps(template))
        event["id"] = f"evt_bench{n:07d}"
        invoice = event["data"]["object"]
        invoice["id"] = f"in_bench{n:07d}"
        invoice["parent"]["subscription_details"].update(subscription=sub, metadata={"membership_ref": f"ms_{pk}"})
        for line in invoice["lines"]["data"]:
            line["parent"]["subscription_item_details"]["subscription"] = sub
        bodies.append(json.dumps(event, separators=(",", ":")).encode())
    return bodies


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
            urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/stripe/", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 405:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start: " + (proc.stderr.read() or b"").decode()[-2000:])


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


def _drain(start, out) -> None:
    import django
    from django.db import connection

    django.setup()
    from django.utils import timezone

    from integrations import inbox

    start.wait()
    n = 0
    while True:
        counts = inbox.process_due(now=timezone.now(), limit=50)
        if not counts:
            break
        n += sum(counts.values())
    out.put(n)
    connection.close()


def run() -> None:
    from django.conf import settings
    from django.db import connections

    from ._support import fresh_database, percentile

    with fresh_database(DB_NAME):
        memberships = _setup()
        bodies = _events(memberships)
        ts = int(time.time())
        sends = [(body, _sign(body, ts)) for body in bodies]
        duplicates = random.Random(7).sample(range(len(sends)), int(len(sends) * DUPLICATE_SHARE))
        for i in duplicates:            # a duplicate goes somewhere after its original
            sends.insert(random.Random(i).randint(i + 1, len(sends)), sends[i])
        db = settings.DATABASES["default"]
        database_url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{DB_NAME}"
        connections.close_all()
        port = _free_port()
        server = _start_gunicorn(port, database_url)
        try:
            latencies, statuses, elapsed = asyncio.run(_send(f"http://127.0.0.1:{port}/webhooks/stripe/", sends))
        finally:
            server.terminate()
            server.wait(timeout=30)

        from integrations.models import InboundEvent, InboundStatus

        stored = InboundEvent.objects.count()
        print(f"ingest: {len(sends)} POSTs ({len(duplicates)} duplicates) from {SENDERS} senders to gunicorn "
              f"({GUNICORN_WORKERS} gthread workers × 4 threads)")
        print(f"  {len(sends) / elapsed:,.0f} requests/s; p50 {percentile(latencies, 50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
              f"statuses {statuses}; stored {stored} (expected {EVENTS})")

        connections.close_all()
        ctx = mp.get_context("fork")
        start, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_drain, args=(start, out)) for _ in range(DRAIN_WORKERS)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        began = time.perf_counter()
        start.set()
        handled = sum(out.get(timeout=3600) for _ in procs)
        drain = time.perf_counter() - began
        for p in procs:
            p.join()

        from memberships.models import LedgerEntry, Operation

        processed = InboundEvent.objects.filter(status=InboundStatus.PROCESSED).count()
        refills = Operation.objects.filter(name="refill_entitlements").count()
        grants = LedgerEntry.objects.filter(kind="grant").count()
        print(f"backlog: {handled} events processed by {DRAIN_WORKERS} workers in {drain:.1f} s "
              f"({handled / drain:,.0f} events/s); processed {processed}/{EVENTS}, refills {refills}, "
              f"grant entries {grants} (each must equal {EVENTS})")
        ok = processed == refills == grants == EVENTS == stored
        print(f"exactly once: {'yes' if ok else 'NO'}; goal ≥ 500 req/s with p99 ≤ 50 ms")
