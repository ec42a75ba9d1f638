"""Renewal day: N paid renewals (`invoice.paid`, billing_reason `subscription_cycle`) waiting in the
webhook inbox, drained by worker processes, beside the same rows written by hand-written
set-based SQL in the same run.

Seed (once, then copied for each side with CREATE DATABASE … TEMPLATE): a practice, a tier of three
benefits whose first cycle carries over (so the renewal expires nothing and both sides write the same
rows), and N memberships after their first paid cycle, each with its first invoice mirrored — the
first enrolled and refilled by the ledger's services, the others its rows copied in bulk.
Then one renewal event per membership is stored in the inbox (`integrations.inbox.store_event`),
built from the recorded fixture `invoice_paid_renewal_recovered.json` with the next monthly period
on its subscription line.

- ours: BENCH_RENEWALS_WORKERS (2) processes `python -m benchmarks._drain` loop
  `integrations.inbox.process_due` until no event is left `received`; the clock runs from the
  moment they are told to start until the last one is done (capped at BENCH_RENEWALS_CAP_SECONDS,
  300: the rate is then partial, and says so).
- floor: on another copy of the seed, the rows a renewal needs — the invoice mirror row, per
  benefit a credit lot, a ledger entry and the balance update, the membership's cycle and period,
  the timeline events (charge succeeded, refilled) and the inbox row's status — written for all N
  in one transaction by set-based SQL that reads the stored events.

Both print CPU ms per renewal: the processes and their PostgreSQL backends (from /proc), with how
busy the whole machine was. After our run: every membership refilled exactly once (grant entries =
N × benefits, no event failed), and the rows each side wrote per renewal (pg_stat_user_tables).

Goal: ≥ 1,000 renewals/s and ≥ 1/3 of the floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

N = int(os.environ.get("BENCH_RENEWALS_N", "3000"))
WORKERS = int(os.environ.get("BENCH_RENEWALS_WORKERS", "2"))
CAP_SECONDS = float(os.environ.get("BENCH_RENEWALS_CAP_SECONDS", "300"))
# A cProfile of each worker goes to <this>.<i> (read with `python -m pstats`).
PROFILE = os.environ.get("BENCH_RENEWALS_PROFILE", "")
ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "stripe" / "invoice_paid_renewal_recovered.json"
PERIOD = timedelta(days=30)
TABLES = ("integrations_inboundevent", "billing_invoice", "memberships_membership", "memberships_creditlot",
          "memberships_entitlementbalance", "memberships_ledgerentry", "memberships_lotmovement",
          "memberships_event", "memberships_operation", "integrations_delivery", "django_q_ormq")


def _periods() -> tuple[datetime, datetime, datetime]:
    """The first cycle's period start, the renewal's period start (about now) and its end."""
    renewal = datetime.now(dt_timezone.utc).replace(microsecond=0)
    return renewal - PERIOD, renewal, renewal + PERIOD


# --- the seed ---------------------------------------------------------------------------------------

def _seed(n: int) -> int:
    """N active memberships after their first paid cycle; one stored renewal event each. Returns the
    number of benefits of the tier. The first membership is enrolled and refilled by the ledger's
    services; the others are its rows copied in bulk (each with its own member, subscription, keys)."""
    from django.db import connection, transaction

    from billing.models import Invoice, InvoiceStatus
    from integrations import inbox
    from memberships import services
    from memberships.models import (
        CreditLot,
        EntitlementBalance,
        Event,
        LedgerEntry,
        Member,
        Membership,
        Operation,
        RolloverRule,
        ServiceKind,
    )
    from tests.factories import PracticeFactory, ServiceFactory, TierBenefitFactory, TierFactory

    first, renewal, renewal_end = _periods()
    practice = PracticeFactory(slug=f"bench-renewals-{time.time_ns()}")
    facial = ServiceFactory(practice=practice, name="HydraFacial", code="hydrafacial", unit_value_cents=25000)
    toxin = ServiceFactory(practice=practice, name="Neurotoxin", code="neurotoxin", unit_value_cents=1200)
    credit = ServiceFactory(practice=practice, name="Product credit", code="product-credit",
                            kind=ServiceKind.CREDIT, unit_value_cents=1)
    tier = TierFactory(practice=practice, code="luxe", name="Luxe", processor_name="Membership — Tier C",
                       price_cents=34900)
    # Nothing of the first cycle expires at the renewal: the floor writes no expiry either.
    TierBenefitFactory(tier=tier, service=facial, quantity_per_cycle=2, rollover=RolloverRule.CARRY_OVER,
                       rollover_cap=4)
    TierBenefitFactory(tier=tier, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.EXPIRE_AFTER,
                       expire_after_cycles=3)
    TierBenefitFactory(tier=tier, service=credit, quantity_per_cycle=10000, rollover=RolloverRule.CARRY_OVER,
                       rollover_cap=20000)
    benefits = 3

    members = Member.objects.bulk_create(
        Member(practice=practice, member_number=f"R{i:06d}", first_name="Renewal", last_name=f"Bench{i}",
               search_name=f"renewal bench{i}", email=f"r{i}@example.com", phone=f"+1415555{i % 10000:04d}",
               processor_customer_id=f"cus_bench{i:06d}") for i in range(n))
    m0 = services.enroll_member(member=members[0], tier=tier, actor=services.Actor.system(),
                                idempotency_key=f"enroll:{members[0].pk}", now=first,
                                processor_subscription_id="sub_bench000000")
    m0 = services.refill_entitlements(membership=m0, cycle_key="in_first000000", actor=services.Actor.processor("stripe"),
                                      now=first, period_start=first, period_end=renewal)
    m0 = Membership.objects.get(pk=m0.pk)
    balances0 = list(EntitlementBalance.objects.filter(membership=m0))
    lots0 = list(CreditLot.objects.filter(membership=m0).order_by("id"))
    entries0 = list(LedgerEntry.objects.filter(membership=m0).order_by("id"))
    events0 = list(Event.objects.filter(membership=m0).order_by("id"))
    operations0 = list(Operation.objects.filter(result_id=m0.pk, result_model="Membership").order_by("id"))

    with transaction.atomic():
        rest = Membership.objects.bulk_create(
            _clone(m0, member_id=member.pk, processor_subscription_id=f"sub_bench{i:06d}")
            for i, member in enumerate(members[1:], 1))
        memberships = [m0, *rest]
        EntitlementBalance.objects.bulk_create(
            _clone(b, membership_id=m.pk) for m in rest for b in balances0)
        lots = CreditLot.objects.bulk_create(_clone(lot, membership_id=m.pk) for m in rest for lot in lots0)
        lot_of = {(lot.membership_id, lot.service_id): lot.pk for lot in lots}
        LedgerEntry.objects.bulk_create(
            _clone(e, membership_id=m.pk, lot_id=lot_of[m.pk, e.service_id], cycle_key=f"in_first{i:06d}",
                   idempotency_key=f"refill:{m.pk}:in_first{i:06d}:{e.service_id}")
            for i, m in enumerate(rest, 1) for e in entries0)
        Event.objects.bulk_create(
            _clone(e, member_id=m.member_id, membership_id=m.pk,
                   payload={**e.payload, **({"cycle_key": f"in_first{i:06d}"} if "cycle_key" in e.payload else {})})
            for i, m in enumerate(rest, 1) for e in events0)
        Operation.objects.bulk_create(
            _clone(op, result_id=m.pk, idempotency_key=(f"enroll:{m.member_id}" if op.name == "enroll_member"
                                                        else f"refill:{m.pk}:in_first{i:06d}"))
            for i, m in enumerate(rest, 1) for op in operations0)
        Invoice.objects.bulk_create(
            Invoice(practice=practice, membership=m, processor="stripe", processor_invoice_id=f"in_first{i:06d}",
                    processor_subscription_id=m.processor_subscription_id, amount_cents=34900,
                    amount_paid_cents=34900, status=InvoiceStatus.PAID, opened_cycle=True, period_start=first,
                    period_end=renewal, attempt_count=1, paid_at=first, processor_created=int(first.timestamp()),
                    last_event_created=int(first.timestamp()), created_at=first, updated_at=first)
            for i, m in enumerate(memberships))

    template = json.loads(FIXTURE.read_text())
    stored_at = datetime.now(dt_timezone.utc)
    with transaction.atomic():
        for i, m in enumerate(memberships):
            inbox.store_event(source=inbox.SOURCE_STRIPE, event=_renewal_event(template, i, m, renewal, renewal_end),
                              handled=True, now=stored_at)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return benefits


def _clone(instance, **changes):
    """A new, unsaved row with `instance`'s column values, some changed."""
    model = type(instance)
    values = {f.attname: getattr(instance, f.attname) for f in model._meta.concrete_fields if not f.primary_key}
    values.update(changes)
    return model(**values)


def _renewal_event(template: dict, i: int, membership, start: datetime, end: datetime) -> dict:
    event = json.loads(json.dumps(template))
    created = int(start.timestamp()) + 3600
    sub, invoice_id = membership.processor_subscription_id, f"in_renew{i:06d}"
    event.update(id=f"evt_renew{i:06d}", created=created + 5)
    invoice = event["data"]["object"]
    invoice.update(id=invoice_id, customer=f"cus_bench{i:06d}", attempt_count=1, attempted=True,
                   billing_reason="subscription_cycle", status="paid", amount_due=34900, amount_paid=34900,
                   subtotal=34900, total=34900, subtotal_excluding_tax=34900, total_excluding_tax=34900,
                   created=created, effective_at=created, period_start=int((start - PERIOD).timestamp()),
                   period_end=int(start.timestamp()), number=f"BENCH-{i:06d}",
                   hosted_invoice_url=f"https://invoice.stripe.com/i/acct_bench/test_{invoice_id}",
                   invoice_pdf=f"https://pay.stripe.com/invoice/acct_bench/test_{invoice_id}/pdf")
    invoice["status_transitions"].update(finalized_at=created, paid_at=created + 5)
    invoice["parent"]["subscription_details"].update(subscription=sub,
                                                     metadata={"membership_ref": f"ms_{membership.pk}"})
    invoice["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
    for line in invoice["lines"]["data"]:
        line.update(id=f"il_renew{i:06d}", invoice=invoice_id, amount=34900,
                    period={"start": int(start.timestamp()), "end": int(end.timestamp())})
        line["parent"]["subscription_item_details"].update(subscription=sub, subscription_item=f"si_bench{i:06d}")
    return event


# --- ours: the inbox drained by worker processes --------------------------------------------------

def _ours(name: str) -> dict:
    from ._support import cpu_meter, database_url

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medspa.settings.bench", DATABASE_URL=database_url(name))
    workers = []
    for i in range(WORKERS):
        cmd = [sys.executable, "-m", "benchmarks._drain", "--seconds", str(CAP_SECONDS)]
        if PROFILE:
            cmd += ["--profile", f"{PROFILE}.{i}"]
        workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1))
    try:
        for w in workers:
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError("a drain worker did not start")
        with cpu_meter(name, [w.pid for w in workers]) as cpu:
            started = time.perf_counter()
            for w in workers:
                w.stdin.write("go\n")
                w.stdin.flush()
            counts: dict[str, int] = {}
            for w in workers:
                result, _ = w.stdout.readline().split(" ", 1)[1].rsplit(" ", 1)
                for key, value in json.loads(result).items():
                    counts[key] = counts.get(key, 0) + value
            elapsed = time.perf_counter() - started
    finally:
        for w in workers:
            w.stdin.close()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    done = sum(counts.values())
    return {"elapsed": elapsed, "counts": counts, "done": done, "cpu": cpu, "capped": elapsed >= CAP_SECONDS}


def _verify(benefits: int, *, operations: bool = True) -> str:
    from django.db.models import Count

    from integrations.models import InboundEvent
    from memberships.models import LedgerEntry, Membership, Operation

    statuses = dict(InboundEvent.objects.values_list("status").annotate(n=Count("id")))
    grants = LedgerEntry.objects.filter(kind="grant", cycle_key__startswith="in_renew").count()
    keys = LedgerEntry.objects.filter(kind="grant", cycle_key__startswith="in_renew").values(
        "membership_id", "service_id").distinct().count()
    refills = Operation.objects.filter(name="refill_entitlements", idempotency_key__contains=":in_renew").count()
    cycles = dict(Membership.objects.values_list("cycle_number").annotate(n=Count("id")))
    ok = (statuses.get("processed", 0) == N and not statuses.get("failed") and not statuses.get("received")
          and grants == keys == N * benefits and (refills == N or not operations) and cycles == {2: N})
    return (f"exactly once: {'yes' if ok else 'NO'} — inbox {statuses}; renewal grant entries {grants} "
            f"(expected {N} × {benefits} = {N * benefits}, one per membership and service: {keys}); refills {refills}; "
            f"memberships by cycle {cycles}")


def _writes() -> dict[str, tuple[int, int]]:
    """Rows inserted and updated per table in this database since it was created."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's own counts, at once
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                       [list(TABLES)])
        return {name: (ins, upd) for name, ins, upd in cursor.fetchall() if ins or upd}


def _per_renewal(writes: dict[str, tuple[int, int]], n: int) -> str:
    parts = []
    for table in TABLES:
        ins, upd = writes.get(table, (0, 0))
        if ins or upd:
            short = table.split("_", 1)[1]
            parts.append(f"{short} " + "/".join(p for p in (f"+{ins / n:g}" if ins else "",
                                                             f"~{upd / n:g}" if upd else "") if p))
    return ", ".join(parts)


# --- the floor: the same rows in set-based SQL ---------------------------------------------------------

FLOOR_SQL = [
    # The stored renewals with their memberships, read from the inbox payloads.
    """
    CREATE TEMP TABLE renewal ON COMMIT DROP AS
    SELECT e.id AS inbound_id, m.id AS membership_id, m.member_id, mb.practice_id, m.tier_id,
           m.cycle_number + 1 AS cycle, inv->>'id' AS invoice_ref, m.processor_subscription_id AS subscription_ref,
           (inv->>'amount_due')::bigint AS amount, (inv->>'amount_paid')::bigint AS paid, inv->>'currency' AS currency,
           to_timestamp((line->'period'->>'start')::bigint) AS period_start,
           to_timestamp((line->'period'->>'end')::bigint) AS period_end,
           to_timestamp((inv->'status_transitions'->>'paid_at')::bigint) AS paid_at,
           (inv->>'attempt_count')::int AS attempt_count, (inv->>'created')::bigint AS processor_created,
           (e.payload->>'created')::bigint AS event_created, NULL::bigint AS invoice_id
    FROM integrations_inboundevent e
    CROSS JOIN LATERAL (SELECT e.payload->'data'->'object' AS inv) i
    CROSS JOIN LATERAL (SELECT i.inv->'lines'->'data'->0 AS line) l
    JOIN memberships_membership m
      ON m.processor_subscription_id = i.inv->'parent'->'subscription_details'->>'subscription'
    JOIN memberships_member mb ON mb.id = m.member_id
    WHERE e.status = 'received' AND e.source = 'stripe' AND e.event_type = 'invoice.paid'
    """,
    "SELECT 1 FROM memberships_membership WHERE id IN (SELECT membership_id FROM renewal) FOR UPDATE",
    """
    WITH inserted AS (
      INSERT INTO billing_invoice (practice_id, membership_id, processor, processor_invoice_id,
        processor_subscription_id, amount_cents, amount_paid_cents, currency, status, period_start, period_end,
        attempt_count, next_payment_attempt, last_failure_code, last_decline_code, hard_decline, action_required,
        failed_at, paid_at, opened_cycle, processor_created, last_event_created, created_at, updated_at)
      SELECT practice_id, membership_id, 'stripe', invoice_ref, subscription_ref, amount, paid, currency, 'paid',
             period_start, period_end, attempt_count, NULL, '', '', false, false, NULL, paid_at, true,
             processor_created, event_created, %(now)s, %(now)s
      FROM renewal
      RETURNING id, processor_invoice_id)
    UPDATE renewal r SET invoice_id = inserted.id FROM inserted WHERE inserted.processor_invoice_id = r.invoice_ref
    """,
    """
    CREATE TEMP TABLE granted (membership_id bigint, service_id bigint, lot_id bigint, quantity bigint,
                               balance_after bigint) ON COMMIT DROP
    """,
    """
    WITH lots AS (
      INSERT INTO memberships_creditlot (membership_id, service_id, source, cycle_number, granted, remaining,
                                         expires_at_cycle, period_start, created_at)
      SELECT r.membership_id, b.service_id, 'paid', r.cycle, b.quantity_per_cycle, b.quantity_per_cycle,
             CASE b.rollover WHEN 'none' THEN r.cycle + 1
                             WHEN 'expire_after' THEN r.cycle + coalesce(b.expire_after_cycles, 1) END,
             r.period_start, %(now)s
      FROM renewal r JOIN memberships_tierbenefit b ON b.tier_id = r.tier_id
      RETURNING id, membership_id, service_id, granted),
    balances AS (
      UPDATE memberships_entitlementbalance eb SET balance = eb.balance + lots.granted, updated_at = %(now)s
      FROM lots WHERE eb.membership_id = lots.membership_id AND eb.service_id = lots.service_id
      RETURNING eb.membership_id, eb.service_id, eb.balance)
    INSERT INTO granted
    SELECT lots.membership_id, lots.service_id, lots.id, lots.granted, balances.balance
    FROM lots JOIN balances USING (membership_id, service_id)
    """,
    """
    INSERT INTO memberships_ledgerentry (membership_id, service_id, kind, source, quantity, frozen_quantity,
      balance_after, lot_id, reverses_id, cycle_key, actor_type, actor_user_id, actor_label, reason, dispute,
      idempotency_key, created_at)
    SELECT g.membership_id, g.service_id, 'grant', 'paid', g.quantity, 0, g.balance_after, g.lot_id, NULL,
           r.invoice_ref, 'processor', NULL, 'stripe', 'Cycle ' || r.cycle || ' refill', false,
           'refill:' || g.membership_id || ':' || r.invoice_ref || ':' || g.service_id, %(now)s
    FROM granted g JOIN renewal r USING (membership_id)
    """,
    """
    UPDATE memberships_membership m SET cycle_number = r.cycle, last_refill_at = %(now)s,
           current_period_start = r.period_start, current_period_end = r.period_end, updated_at = %(now)s
    FROM renewal r WHERE m.id = r.membership_id
    """,
    """
    INSERT INTO memberships_event (practice_id, member_id, membership_id, kind, summary, payload, actor_type,
                                   actor_user_id, created_at)
    SELECT practice_id, member_id, membership_id, 'charge_succeeded',
           'Charge of ' || CASE WHEN currency = 'usd' THEN '$' ELSE upper(currency) || ' ' END
             || to_char(paid / 100.0, 'FM999,999,990.00') || ' succeeded',
           jsonb_build_object('invoice_id', invoice_id, 'invoice_ref', invoice_ref, 'amount_cents', paid,
                              'currency', currency, 'billing_reason', 'subscription_cycle', 'opens_cycle', true),
           'processor', NULL::integer, %(now)s
    FROM renewal
    UNION ALL
    SELECT r.practice_id, r.member_id, r.membership_id, 'refilled',
           'Cycle ' || r.cycle || ' refilled (' || g.n || ' benefits)',
           jsonb_build_object('cycle_key', r.invoice_ref, 'cycle_number', r.cycle, 'granted', g.granted,
                              'expired_total', 0, 'summary', g.summary, 'late', false),
           'processor', NULL, %(now)s
    FROM renewal r JOIN (
      SELECT membership_id, count(*) AS n, string_agg('+' || quantity, ', ' ORDER BY service_id) AS summary,
             jsonb_agg(jsonb_build_object('service_id', service_id, 'quantity', quantity,
                                          'balance_after', balance_after) ORDER BY service_id) AS granted
      FROM granted GROUP BY membership_id) g USING (membership_id)
    """,
    """
    UPDATE integrations_inboundevent e SET status = 'processed', error = '', attempts = e.attempts + 1,
           processed_at = %(now)s, next_attempt_at = NULL, practice_id = r.practice_id
    FROM renewal r WHERE e.id = r.inbound_id
    """,
]


def _floor(name: str) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from ._support import cpu_meter

    connection.ensure_connection()
    with cpu_meter(name) as cpu:
        started = time.perf_counter()
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in FLOOR_SQL:
                cursor.execute(sql, {"now": now})
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "cpu": cpu}


def run() -> None:
    from ._support import fresh_database

    with fresh_database("bench_renewals_seed") as seed:
        started = time.perf_counter()
        benefits = _seed(N)
        print(f"seed: {N} active memberships (tier of {benefits} benefits, first cycle refilled), {N} renewal "
              f"events stored, in {time.perf_counter() - started:.1f} s", flush=True)

        with fresh_database("bench_renewals_floor", template=seed) as name:
            floor = _floor(name)
            floor_writes = _writes()
            floor_check = _verify(benefits, operations=False)
        floor_rate = N / floor["elapsed"]
        print(f"floor (set-based SQL, one transaction): {N} renewals in {floor['elapsed']:.2f} s = "
              f"{floor_rate:,.0f} renewals/s; {floor['cpu'].describe(N, 'renewal')}", flush=True)
        print(f"  rows per renewal: {_per_renewal(floor_writes, N)}", flush=True)
        if "yes" not in floor_check:
            print(f"  floor check: {floor_check}", flush=True)

        with fresh_database("bench_renewals", template=seed) as name:
            ours = _ours(name)
            time.sleep(0.5)  # the workers' backends have reported their table statistics as they ended
            ours_writes = _writes()
            check = _verify(benefits)
        rate = ours["done"] / ours["elapsed"]
        partial = (f" — PARTIAL: stopped at the {CAP_SECONDS:.0f} s cap with {ours['done']} of {N} done"
                   if ours["capped"] or ours["done"] < N else "")
        print(f"ours ({WORKERS} worker processes draining the inbox): {ours['done']} renewals in "
              f"{ours['elapsed']:.2f} s = {rate:,.0f} renewals/s{partial}; "
              f"{ours['cpu'].describe(ours['done'], 'renewal')}", flush=True)
        print(f"  rows per renewal: {_per_renewal(ours_writes, max(ours['done'], 1))}", flush=True)
        print(f"  {check}", flush=True)
        print(f"ratio ours/floor: {rate / floor_rate:.3f} (rate), CPU per renewal "
              f"{ours['cpu'].per_item(ours['done']) / floor['cpu'].per_item(N):.1f}× the floor's; "
              f"goal ≥ 1,000 renewals/s and ≥ 0.333 of the floor", flush=True)
