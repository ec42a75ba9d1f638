"""Dunning at scale: a practice's bad renewal day, N failed invoices at once (BENCH_DUNNING_CASES,
default 600; one in 10 members without SMS consent, one in 25 without an email address).

The figure is the dunning run (`run_dunning`, as the schedule calls it, batch after batch): the sweep
that opens a case for every failed invoice without one and queues its day-0 messages — new cases per
second, goal >= 100/s — beside a floor measured in the same run on an identical copy of the data:
the same rows written by hand-written set-based SQL (`_dunning_floor`), their ratio, and the CPU ms
per case of this process and its PostgreSQL backend (which a neighbour's load does not move). Each
measurement starts from a copy of one prepared database (its planner statistics taken, as autovacuum
keeps them), so they compare like with like; the rows each wrote are counted and compared.

Also, for scale: opening cases one at a time (the path of a failure a webhook reports), the outbox
sending day 0's messages (locmem SMS/email), day 3's run (retries, then the messages that waited
for them), the empty run every few minutes, and the queue page's selector."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone as dt_timezone

CASES = int(os.environ.get("BENCH_DUNNING_CASES", "600"))
ONE_BY_ONE = min(CASES, 200)
T0 = datetime(2026, 1, 5, 18, 0, tzinfo=dt_timezone.utc)  # 10:00 in Los Angeles
GOAL = 100  # new cases per second (issue 16)


def run() -> dict[str, float]:
    from django.test.utils import override_settings

    from benchmarks._support import fresh_database

    with fresh_database("bench_dunning"), override_settings(
        SMS_BACKEND="locmem", EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DUNNING_PROCESSOR="tests.billing.fakes.FakeProcessor",
    ):
        practice_id = _prepare()
        sweep = _in_copy("bench_dunning_sweep", lambda: _sweep(practice_id), then=lambda: _after(practice_id))
        floor = _in_copy("bench_dunning_floor", lambda: _floor(practice_id))
        _in_copy("bench_dunning_single", lambda: _one_by_one(practice_id))
    rate, floor_rate = CASES / sweep["wall"], CASES / floor["wall"]
    same = "the same rows" if sweep["rows"] == floor["rows"] else f"ROWS DIFFER: {sweep['rows']} vs {floor['rows']}"
    print(f"dunning run: {rate:.0f} new cases/s (goal >= {GOAL}/s: {'met' if rate >= GOAL else 'NOT met'}); "
          f"floor (hand-written set-based SQL) {floor_rate:.0f}/s; ratio {rate / floor_rate:.2f} of the floor; "
          f"CPU {sweep['cpu_ms'] / CASES:.2f} ms/case vs floor {floor['cpu_ms'] / CASES:.2f} ms/case; {same}")
    return {"cases per s": rate, "floor per s": floor_rate, "ratio": rate / floor_rate}


def _in_copy(name: str, measure, then=None) -> dict:
    from benchmarks._support import fresh_database

    with fresh_database(name, template="bench_dunning"):
        result = measure()
        if then is not None:
            then()
    return result


def _prepare() -> int:
    """N active members on Glow whose renewal failed, as the inbox leaves them: the invoice mirrored
    as failed, the membership past due; no case yet. The practice's policy exists."""
    from billing.dunning.links import card_update_link
    from billing.dunning.policy import current_policy
    from billing.models import Invoice, InvoiceStatus
    from memberships.models import AutomationStage, Membership, MembershipStatus
    from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier

    started = time.perf_counter()
    practice = PracticeFactory(slug=f"bench-dunning-{time.time_ns()}", timezone="America/Los_Angeles",
                               automation_stage=AutomationStage.DUNNING)
    tier = glow_tier(practice)[0]
    memberships = []
    for i in range(CASES):
        member = MemberFactory(practice=practice, sms_consent=i % 10 != 3, **({"email": ""} if i % 25 == 7 else {}))
        memberships.append(active_membership(tier=tier, member=member, now=T0 - timedelta(days=30)))
    failed_at = T0 - timedelta(minutes=2)
    Invoice.objects.bulk_create([
        Invoice(practice=practice, membership=m, processor_invoice_id=f"in_bench_{m.pk}", amount_cents=19900,
                currency="usd", status=InvoiceStatus.OPEN, attempt_count=1, last_failure_code="card_declined",
                last_decline_code="insufficient_funds", failed_at=failed_at, period_start=T0, created_at=failed_at,
                updated_at=failed_at) for m in memberships])
    Membership.objects.filter(pk__in=[m.pk for m in memberships]).update(status=MembershipStatus.PAST_DUE)
    current_policy(practice=practice, now=T0 - timedelta(days=60))
    card_update_link(0)  # the URLconf, loaded once per process (a worker has it by its first message)
    _drain(T0 - timedelta(days=30))
    _analyze()
    print(f"setup: {CASES} members with a failed renewal in {time.perf_counter() - started:.1f} s")
    return practice.pk


def _analyze() -> None:
    """Planner statistics for the rows just written in bulk, as autovacuum keeps them in production
    (the copies of the prepared database inherit them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _rows(practice_id: int) -> dict[str, int]:
    """What a run wrote, counted per table (and per kind where the kinds differ)."""
    from django.db.models import Count

    from billing.models import DunningCase, DunningMessage, DunningStep
    from integrations.models import Delivery
    from memberships.models import ChartFlag, Event

    rows = {"cases": DunningCase.objects.filter(practice_id=practice_id).count(),
            "flags": ChartFlag.objects.filter(practice_id=practice_id).count(),
            "deliveries": Delivery.objects.filter(practice_id=practice_id).count()}
    for model, field, qs in ((DunningStep, "status", DunningStep.objects.filter(case__practice_id=practice_id)),
                             (DunningMessage, "channel", DunningMessage.objects.filter(case__practice_id=practice_id)),
                             (Event, "kind", Event.objects.filter(practice_id=practice_id, created_at=T0))):
        for row in qs.values(field).annotate(n=Count("pk")):
            rows[f"{model.__name__}:{row[field]}"] = row["n"]
    return rows


def _sweep(practice_id: int) -> dict:
    from benchmarks._support import cpu_meter
    from billing import dunning

    runs, totals = 0, {}
    with cpu_meter() as cpu:
        started = time.perf_counter()
        while True:
            counts = dunning.run_dunning(now=T0)
            runs += 1
            for key, n in counts.items():
                totals[key] = totals.get(key, 0) + n
            if not counts.get("opened"):
                break
        wall = time.perf_counter() - started
    print(f"dunning run (the sweep, {runs} runs of at most 500): {CASES} new cases in {wall:.2f} s, "
          f"{CASES / wall:.0f} cases/s ({totals}); {cpu.describe(CASES, 'case')}")
    return {"wall": wall, "cpu_ms": cpu.total_ms, "rows": _rows(practice_id)}


def _floor(practice_id: int) -> dict:
    from django.conf import settings

    from benchmarks._dunning_floor import write_floor
    from benchmarks._support import cpu_meter

    with cpu_meter() as cpu:
        started = time.perf_counter()
        write_floor(practice_id=practice_id, now=T0, link_prefix=settings.PUBLIC_BASE_URL + "/billing/card/")
        wall = time.perf_counter() - started
    print(f"floor (the same rows by hand-written set-based SQL): {CASES} cases in {wall:.2f} s, "
          f"{CASES / wall:.0f} cases/s; {cpu.describe(CASES, 'case')}")
    return {"wall": wall, "cpu_ms": cpu.total_ms, "rows": _rows(practice_id)}


def _one_by_one(practice_id: int) -> None:
    """The path of a failure a webhook reports: one case opened per call (same rules, a batch of one)."""
    from benchmarks._support import cpu_meter, summary_ms
    from billing.dunning.opening import failure_of_invoice, open_case_for_failure
    from billing.models import Invoice

    invoices = list(Invoice.objects.filter(practice_id=practice_id).select_related("membership__member")
                    .order_by("id")[:ONE_BY_ONE])
    samples = []
    with cpu_meter() as cpu:
        for invoice in invoices:
            item = failure_of_invoice(invoice, mark_past_due=False, now=T0)
            t = time.perf_counter()
            open_case_for_failure(membership=invoice.membership, invoice_ref=item.invoice_ref,
                                  amount_cents=item.amount_cents, decline_code=item.decline_code, hard=item.hard,
                                  failed_at=item.failed_at, mark_past_due=False, now=T0)
            samples.append(time.perf_counter() - t)
    print(f"open one case at a time (a webhook's failure; steps, flag, events): {summary_ms(samples)}; "
          f"{cpu.describe(len(invoices), 'case')}")


def _drain(now) -> float:
    from integrations import outbox

    started = time.perf_counter()
    while outbox.dispatch_due(now=now, limit=500):
        pass
    return time.perf_counter() - started


def _after(practice_id: int) -> None:
    """On the sweep's copy: day 0's messages sent, day 3, the idle run, the queue page."""
    from django.core import mail

    from benchmarks._support import cpu_meter
    from billing import dunning
    from billing.dunning.selectors import open_dunning_cases
    from integrations.messaging import sms

    mail.outbox = []
    sms.outbox.clear()
    with cpu_meter() as cpu:
        sent = _drain(T0)
    print(f"day 0: outbox sent {len(sms.outbox)} SMS and {len(mail.outbox)} emails in {sent:.2f} s; "
          f"{cpu.describe(CASES, 'case')}")
    now = T0 + timedelta(days=3)
    with cpu_meter() as cpu:
        t = time.perf_counter()
        counts = dunning.run_dunning(now=now, limit=10_000)
        sent = _drain(now)
        counts2 = dunning.run_dunning(now=now, limit=10_000)  # the messages that waited for their retry
        sent += _drain(now)
        wall = time.perf_counter() - t
    print(f"day 3: run + send {wall:.2f} s ({counts} then {counts2}; outbox {sent:.2f} s); "
          f"{cpu.describe(CASES, 'case')}")
    _analyze()
    with cpu_meter() as cpu:
        t = time.perf_counter()
        for _ in range(20):
            dunning.run_dunning(now=T0 + timedelta(days=3, minutes=5))
        idle = (time.perf_counter() - t) / 20
    print(f"scheduled run with nothing due: {idle * 1000:.1f} ms; {cpu.describe(20, 'run')}")
    with cpu_meter() as cpu:
        t = time.perf_counter()
        rows = open_dunning_cases(practice_id)
        page = time.perf_counter() - t
    print(f"open_dunning_cases: {len(rows)} rows in {page * 1000:.0f} ms; {cpu.describe(1, 'call')}")
    sms.outbox.clear()
