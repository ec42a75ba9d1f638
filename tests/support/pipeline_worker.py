"""A stand-alone inbox worker for the convergence tests: `inbox.process_due` in a loop, a few due
events per round (`--limit`: small, so that several workers take their share of one backlog side by
side and one membership's events meet in two workers at once), until it has found nothing for a
while. It reads failed invoices' declines from `--stripe-api-base` (the test's recorded-response
server). It prints "ready" once set up and, with --go FILE, waits for that file before the first
round, so several workers start together; at the end it prints its counts. `--now` (ISO 8601): the
worker's clock starts there and ticks (the test's histories happened at their own dates).

    DATABASE_URL=... python -m tests.support.pipeline_worker --stripe-api-base URL [--go FILE] [--limit N]
        [--now 2026-01-01T00:00:00+00:00]
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stripe-api-base", required=True)
    parser.add_argument("--go", default="")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--idle-rounds", type=int, default=20)
    parser.add_argument("--now", default="")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from integrations import inbox

    settings.STRIPE_API_BASE = args.stripe_api_base
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    started, start = time.monotonic(), datetime.fromisoformat(args.now) if args.now else None

    def now() -> datetime:
        return start + timedelta(seconds=time.monotonic() - started) if start else timezone.now()

    print("ready", flush=True)
    if args.go:
        deadline = time.monotonic() + 60
        while not Path(args.go).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    totals: dict[str, int] = {}
    idle = 0
    while idle < args.idle_rounds:
        counts = inbox.process_due(now=now(), limit=args.limit)
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
        idle = 0 if counts else idle + 1
        if not counts:
            time.sleep(0.05)
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
