"""Reconcile 10,000 members: the pure engine over fetched snapshots, and a whole run (ledger and
sheet snapshots read from the database, processor and record rows already fetched, results stored)."""

from __future__ import annotations

import time

from django.utils import timezone

MEMBERS = 10_000


def run() -> None:
    from benchmarks._support import fresh_database

    with fresh_database("bench_reconcile"):
        _run()


def _processor_rows(ledger):
    from billing.reconciliation.compare import ProcessorRow

    rows = []
    for i, row in enumerate(ledger):
        rows.append(ProcessorRow(subscription_id=row.processor_subscription_id, customer_id=row.processor_customer_id,
                                 status="past_due" if i % 97 == 0 else "active",
                                 price_cents=29900 if i % 89 == 0 else row.price_cents,
                                 latest_invoice_status="paid"))
    return rows


def _record_rows(ledger):
    from billing.reconciliation.compare import RecordRow

    return [RecordRow(member_id=row.member_id, tier="Radiance" if i % 101 == 0 else row.tier_name,
                      status=row.status) for i, row in enumerate(ledger)]


def _run() -> None:
    from benchmarks.import_members import make_csv, setup_practice
    from billing.sheets.batches import create_import_batch, run_import_batch
    from billing.reconciliation.compare import reconcile
    from billing.reconciliation.runs import run_reconciliation
    from billing.reconciliation.snapshots import ledger_rows, sheet_rows

    practice = setup_practice()
    batch = create_import_batch(practice=practice, file_name="bench.csv", content=make_csv(MEMBERS), dry_run=False,
                                now=timezone.now())
    run_import_batch(batch_id=batch.pk, now=timezone.now())
    ledger = ledger_rows(practice_id=practice.pk)
    sheet = sheet_rows(practice_id=practice.pk)
    processor, record = _processor_rows(ledger), _record_rows(ledger)

    started = time.perf_counter()
    found = reconcile(ledger, sheet, processor, record)
    engine = time.perf_counter() - started
    print(f"engine: {len(ledger)} members, {len(found)} discrepancies in {engine:.2f} s")

    sources = {"processor": lambda **_: processor, "record": lambda **_: record}
    for label in ("whole run (first: stores every discrepancy)", "whole run (again: same discrepancies)"):
        started = time.perf_counter()
        result = run_reconciliation(practice=practice, now=timezone.now(), trigger="bench", sources=sources)
        print(f"{label}: {result.members_compared} members, {result.total} discrepancies in "
              f"{time.perf_counter() - started:.2f} s")
