"""Dunning at scale: 1,000 failed invoices at once (a bad day for a large practice). Times opening
the cases, the scheduled run that queues day 0's messages and day 3's retries, the outbox sending
them (locmem SMS/email, a scripted processor), the empty run every few minutes, and the queue page's
selector."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone as dt_timezone

CASES = int(__import__("os").environ.get("BENCH_DUNNING_CASES", "300"))
T0 = datetime(2026, 1, 5, 18, 0, tzinfo=dt_timezone.utc)  # 10:00 in Los Angeles


def run() -> dict[str, float]:
    from django.test.utils import override_settings

    from benchmarks._support import fresh_database

    with fresh_database("bench_dunning"), override_settings(
        SMS_BACKEND="locmem", EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DUNNING_PROCESSOR="tests.billing.fakes.FakeProcessor",
    ):
        return _run()


def _drain(now) -> float:
    from integrations import outbox

    started = time.perf_counter()
    while outbox.dispatch_due(now=now, limit=500):
        pass
    return time.perf_counter() - started


def _run() -> dict[str, float]:
    from django.core import mail

    from benchmarks._support import cpu_meter, summary_ms
    from billing import dunning
    from billing.dunning.selectors import open_dunning_cases
    from integrations import outbox
    from integrations.messaging import sms
    from memberships.models import AutomationStage
    from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier

    mail.outbox = []
    practice = PracticeFactory(slug=f"bench-dunning-{time.time_ns()}", timezone="America/Los_Angeles",
                               automation_stage=AutomationStage.DUNNING)
    tier = glow_tier(practice)[0]
    started = time.perf_counter()
    memberships = [active_membership(tier=tier, member=MemberFactory(practice=practice), now=T0 - timedelta(days=30))
                   for _ in range(CASES)]
    _drain(T0 - timedelta(days=30))
    print(f"setup: {CASES} active memberships in {time.perf_counter() - started:.1f} s")

    results: dict[str, float] = {}
    # CPU: this process's main thread and its PostgreSQL backend, per item (cpu_meter).
    samples = []
    with cpu_meter() as cpu:
        for i, membership in enumerate(memberships):
            t = time.perf_counter()
            dunning.open_case_for_failure(membership=membership, invoice_ref=f"in_{i}", amount_cents=19900,
                                          decline_code="insufficient_funds", now=T0)
            samples.append(time.perf_counter() - t)
    print(f"open a case (past due, flag, 9 steps, 4 events): {summary_ms(samples)}; {cpu.describe(CASES, 'case')}")

    for label, now in (("day 0", T0), ("day 3", T0 + timedelta(days=3))):
        with cpu_meter() as cpu:
            t = time.perf_counter()
            counts = dunning.run_dunning(now=now, limit=10_000)
            queued = time.perf_counter() - t
            sent = _drain(now)
            t2 = time.perf_counter()
            counts2 = dunning.run_dunning(now=now, limit=10_000)  # the messages that waited for their retry
            queued += time.perf_counter() - t2
            sent += _drain(now)
        print(f"{label}: run_dunning {queued:.2f} s ({counts} then {counts2}); outbox sent in {sent:.2f} s "
              f"({len(sms.outbox)} SMS, {len(mail.outbox)} emails so far); run + send "
              f"{cpu.describe(CASES, 'case')}")
        results[f"{label} run"] = queued
        results[f"{label} send"] = sent

    with cpu_meter() as cpu:
        t = time.perf_counter()
        for _ in range(20):
            dunning.run_dunning(now=T0 + timedelta(days=3, minutes=5))
        idle = (time.perf_counter() - t) / 20
    print(f"scheduled run with nothing due: {idle * 1000:.1f} ms; {cpu.describe(20, 'run')}")
    with cpu_meter() as cpu:
        t = time.perf_counter()
        rows = open_dunning_cases(practice.pk)
        page = time.perf_counter() - t
    print(f"open_dunning_cases: {len(rows)} rows in {page * 1000:.0f} ms; {cpu.describe(1, 'call')}")
    results.update({"idle run": idle, "queue selector": page})
    sms.outbox.clear()
    del outbox
    return results
