"""The two sides of `make run` on one SQLite file, each a process of its own with its own connection,
for tests/medspa/test_sqlite_web_and_worker.py. Run with the settings `make run` uses
(DJANGO_SETTINGS_MODULE=medspa.settings.dev) and DATABASE_URL pointing at the file:

    python -m tests.support.sqlite_sides setup            # a practice, a tier, some paid members
    python -m tests.support.sqlite_sides web --members N   # the front desk: enroll, webhook, redeem
    python -m tests.support.sqlite_sides worker            # the worker: outbox and inbox, until done
                                                           # (and, with --web-done FILE, not before FILE exists)
    python -m tests.support.sqlite_sides check             # what the file holds, as JSON

`web` and `worker` print "ready" once set up and start when they read a line on stdin, so the test
starts them together. Each prints one JSON line at the end with what it did and every error it
logged; an exception it does not expect ends it with a traceback and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

PAID_MEMBERS = 8


class _Errors(logging.Handler):
    """Every ERROR record, whoever logs it: a job that catches a failure logs it and goes on."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}"[:500])


def _wait_for_start() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def setup() -> dict:
    from django.utils import timezone

    from tests.factories import PracticeFactory, active_membership, glow_tier

    practice = PracticeFactory(slug="glow")
    tier, _, _ = glow_tier(practice)
    now = timezone.now()
    paid = [active_membership(tier=tier, now=now).pk for _ in range(PAID_MEMBERS)]
    return {"practice": practice.pk, "tier": tier.pk, "paid": paid}


def web(*, members: int) -> dict:
    """What the staff pages and the webhook view do: enroll a member, store the processor's paid
    invoice for it (the worker refills), and spend credit of the members who have paid."""
    from django.utils import timezone

    from integrations import inbox
    from memberships import services
    from memberships.errors import InsufficientBalance
    from memberships.models import Membership, Service, Tier
    from tests.factories import MemberFactory
    from tests.support.stripe_events import load_event

    tier = Tier.objects.select_related("practice").get(code="glow")
    credit = Service.objects.get(practice=tier.practice, code="product-credit")
    paid = list(Membership.objects.filter(status="active").order_by("pk"))
    _wait_for_start()
    done = {"enrolled": 0, "stored": 0, "redeemed": 0, "refused": 0}
    for i in range(members):
        member = MemberFactory(practice=tier.practice, member_number=f"W{i:05d}", phone=f"+1415556{i:04d}")
        membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                            idempotency_key=f"side-enroll-{i}", now=timezone.now(),
                                            processor_subscription_id=f"sub_side{i}")
        done["enrolled"] += 1
        event = load_event("invoice_paid_first.json", membership=membership, subscription_ref=f"sub_side{i}",
                           event_suffix=f"_side{i}")
        event["data"]["object"]["id"] += f"_side{i}"
        _, created = inbox.store_event(source="stripe", event=event, handled=True, now=timezone.now())
        done["stored"] += int(created)
        for j in range(3):
            try:
                services.redeem_entitlement(membership=paid[(i + j) % len(paid)], service=credit, quantity=100,
                                            actor=services.Actor.system(), idempotency_key=f"side-redeem-{i}-{j}",
                                            now=timezone.now())
                done["redeemed"] += 1
            except InsufficientBalance:
                done["refused"] += 1
    return done


def worker(*, web_done: str = "", idle_rounds: int = 20) -> dict:
    """What the django-q2 jobs do meanwhile: deliver the outbox and process the inbox, until nothing
    has been due for a while once the web side is done (the file `web_done` exists; the test makes it
    when the web process has ended: on a busy machine the web side may pause longer than the idle
    rounds last)."""
    from django.utils import timezone

    from integrations import inbox, outbox

    _wait_for_start()
    totals: dict[str, int] = {}
    idle = 0
    deadline = time.monotonic() + 600
    while (idle < idle_rounds or (web_done and not Path(web_done).exists())) and time.monotonic() < deadline:
        worked = False
        for counts in (outbox.dispatch_due(now=timezone.now()), inbox.process_due(now=timezone.now())):
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
                worked = True
        idle = 0 if worked else idle + 1
        if not worked:
            time.sleep(0.05)
    return totals


def check() -> dict:
    from django.db import connection
    from django.db.models import Count, Sum

    from integrations.models import Delivery, InboundEvent
    from memberships.models import EntitlementBalance, LedgerEntry

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
    balances = EntitlementBalance.objects.aggregate(total=Sum("balance"))["total"]
    entries = LedgerEntry.objects.aggregate(total=Sum("quantity"))["total"]
    return {
        "journal_mode": journal_mode,
        "inbound": dict(InboundEvent.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "deliveries": dict(Delivery.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "delivery_errors": list(Delivery.objects.exclude(last_error="").values_list("last_error", flat=True)[:5]),
        "inbound_errors": list(InboundEvent.objects.exclude(error="").values_list("error", flat=True)[:5]),
        "balances_match_entries": balances == entries,
        "entries": LedgerEntry.objects.count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=["setup", "web", "worker", "check"])
    parser.add_argument("--members", type=int, default=30)
    parser.add_argument("--web-done", default="")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings.dev")
    import django

    django.setup()
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    if args.side == "setup":
        result = setup()
    elif args.side == "web":
        result = web(members=args.members)
    elif args.side == "worker":
        result = worker(web_done=args.web_done)
    else:
        result = check()
    print(json.dumps({"result": result, "errors": errors.records}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
