"""Import 10,000 spreadsheet rows (check + write, then the no-op re-import)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

ROWS = 10_000


def make_csv(rows: int = ROWS) -> bytes:
    resumes = (timezone.now() + timedelta(days=60)).date().isoformat()
    lines = ["Member #,First Name,Last Name,Email,Mobile,Membership,Member since,Monthly price,"
             "HydraFacial balance,Product credit ($),Stripe customer,Stripe subscription,SMS opt-in,Status,"
             "Paused until"]
    for i in range(rows):
        paused = i % 50 == 0
        lines.append(f"B{i:06d},First{i},Last{i},m{i}@example.com,415555{i % 10000:04d},Glow,"
                     f"{2024 + i % 2}-{1 + i % 12:02d}-{1 + i % 28:02d},$199.00,{i % 3},${(i % 6) * 10}.00,"
                     f"cus_{i:06d},sub_{i:06d},yes,{'paused' if paused else 'active'},{resumes if paused else ''}")
    return ("\n".join(lines) + "\n").encode()


def setup_practice():
    from tests.factories import PracticeFactory, glow_tier

    practice = PracticeFactory(slug=f"bench-import-{time.time_ns()}")
    glow_tier(practice)
    return practice


def run() -> dict[str, float]:
    from benchmarks._support import fresh_database

    with fresh_database("bench_import_members"):
        return _run()


def _run() -> dict[str, float]:
    from billing.models import ImportStatus
    from billing.sheets.batches import create_import_batch, run_import_batch

    practice = setup_practice()
    content = make_csv()
    results = {}
    for label in ("first import", "re-import (no-op)"):
        batch = create_import_batch(practice=practice, file_name="bench.csv", content=content, dry_run=False,
                                    now=timezone.now())
        started = time.perf_counter()
        batch = run_import_batch(batch_id=batch.pk, now=timezone.now())
        elapsed = time.perf_counter() - started
        assert batch.status == ImportStatus.IMPORTED, batch.errors[:3]
        results[label] = elapsed
        print(f"{label}: {ROWS} rows in {elapsed:.1f} s ({ROWS / elapsed:,.0f} rows/s); "
              f"created {batch.created_count}, unchanged {batch.unchanged_count}")
    return results
