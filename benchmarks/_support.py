"""Helpers the benchmarks share: a fresh PostgreSQL database of their own, and percentiles."""

from __future__ import annotations

import statistics
from contextlib import contextmanager

from django.conf import settings
from django.core.management import call_command
from django.db import connections


@contextmanager
def fresh_database(name: str):
    """Point the default connection at a new database `name`, migrated; drop it afterwards."""
    import psycopg

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        raise RuntimeError("benchmarks run on PostgreSQL: set BENCH_DATABASE_URL")
    admin_dsn = f"host={db.get('HOST') or '127.0.0.1'} port={db.get('PORT') or 5432} user={db.get('USER') or 'postgres'} dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    connections.close_all()
    original = db["NAME"]
    db["NAME"] = name
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        connections.close_all()
        db["NAME"] = original
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
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
