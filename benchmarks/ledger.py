"""Redemptions per second through `redeem_entitlement` on PostgreSQL, at 1 and 16 concurrent clients,
beside a raw-SQL conditional UPDATE of the same balance rows in the same run, and the ratio; and beside
the same writes hand-written as separate statements in one transaction.

Each client is its own process (as gunicorn workers are) redeeming one cent at a time from its own
membership, for a fixed time. The raw baseline is the bare minimum a correct redemption needs (one
conditional UPDATE, autocommit); the service also locks the membership, draws from the oldest lot,
writes the entry, its lot movement and the timeline event, all in one transaction."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CLIENTS = (1, 16)


def _client(kind: str, membership_id: int, service_id: int, seconds: float, start, out, finish) -> None:
    import django
    from django.db import connection

    django.setup()
    from django.utils import timezone

    from memberships import services
    from memberships.models import Membership, Service

    # Loaded as the API and the staff pages load it (with its member and practice).
    membership = Membership.objects.select_related("member__practice", "tier").get(pk=membership_id)
    service = Service.objects.get(pk=service_id)
    actor = services.Actor.system("bench")
    table = "memberships_entitlementbalance"
    done, n = 0, 0
    start.wait()
    deadline = time.perf_counter() + seconds
    pid = os.getpid()
    while time.perf_counter() < deadline:
        n += 1
        if kind == "raw":
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {table} SET balance = balance - 1 WHERE membership_id = %s AND service_id = %s "
                               f"AND balance - reserved >= 1", [membership_id, service_id])
                done += cursor.rowcount
        elif kind == "raw_same_work":
            done += _same_work_in_sql(membership_id, service_id, f"bench:{kind}:{pid}:{n}")
        else:
            services.redeem_entitlement(membership=membership, service=service, quantity=1, actor=actor,
                                        idempotency_key=f"bench:{kind}:{pid}:{n}", now=timezone.now())
            done += 1
    out.put(done)
    finish.wait()  # alive, connection open, until the benchmark has read our CPU and our backend's
    connection.close()


def _same_work_in_sql(membership_id: int, service_id: int, key: str) -> int:
    """What a redemption writes, as hand-written SQL in one transaction: lock the membership, move the
    balance, draw the lot, insert the entry and the timeline event. The floor under the service."""
    from django.db import connection, transaction
    from django.utils import timezone

    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT m.member_id, mb.practice_id FROM memberships_membership m JOIN memberships_member mb "
                       "ON mb.id = m.member_id WHERE m.id = %s FOR UPDATE OF m", [membership_id])
        member_id, practice_id = cursor.fetchone()
        cursor.execute("UPDATE memberships_entitlementbalance SET balance = balance - 1 WHERE membership_id = %s "
                       "AND service_id = %s AND balance - reserved >= 1 RETURNING balance", [membership_id, service_id])
        (balance,) = cursor.fetchone()
        cursor.execute("UPDATE memberships_creditlot SET remaining = remaining - 1 WHERE id = (SELECT id FROM "
                       "memberships_creditlot WHERE membership_id = %s AND service_id = %s AND remaining > 0 ORDER BY "
                       "expires_at_cycle ASC NULLS LAST, created_at, id LIMIT 1 FOR UPDATE) AND remaining >= 1 "
                       "RETURNING id", [membership_id, service_id])
        (lot_id,) = cursor.fetchone()
        cursor.execute("INSERT INTO memberships_ledgerentry (membership_id, service_id, kind, source, quantity, "
                       "frozen_quantity, balance_after, lot_id, cycle_key, actor_type, actor_label, reason, dispute, "
                       "idempotency_key, created_at) VALUES (%s, %s, 'redeem', '', -1, 0, %s, %s, '', 'system', "
                       "'bench', 'Redeemed', false, %s, %s) RETURNING id",
                       [membership_id, service_id, balance, lot_id, key, now])
        (entry_id,) = cursor.fetchone()
        cursor.execute("INSERT INTO memberships_event (practice_id, member_id, membership_id, kind, summary, payload, "
                       "actor_type, created_at) VALUES (%s, %s, %s, 'redeemed', 'Redeemed 1 Credit', %s::jsonb, "
                       "'system', %s)", [practice_id, member_id, membership_id,
                                         f'{{"entry_id": {entry_id}, "quantity": 1, "balance_after": {balance}}}', now])
    return 1


def _measure(kind: str, memberships: list[tuple[int, int]], clients: int) -> tuple[float, float]:
    """Redemptions per second, and CPU ms per redemption (the clients and their backends)."""
    from django.conf import settings
    from django.db import connections

    from ._support import cpu_meter

    connections.close_all()
    ctx = mp.get_context("fork")
    start, out, finish = ctx.Event(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_client, args=(kind, *memberships[i], DURATION, start, out, finish))
             for i in range(clients)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every client connect and load its rows before the clock starts
    with cpu_meter(settings.DATABASES["default"]["NAME"], [p.pid for p in procs]) as cpu:
        start.set()
        total = sum(out.get(timeout=DURATION + 60) for _ in procs)
    finish.set()
    for p in procs:
        p.join()
    return total / DURATION, cpu.per_item(total)


def _setup(count: int) -> list[tuple[int, int]]:
    from django.utils import timezone

    from memberships import services
    from memberships.models import Member, Practice, Service, ServiceKind, Tier, TierBenefit

    now = timezone.now()
    practice = Practice.objects.create(name="Bench", slug="bench")
    credit = Service.objects.create(practice=practice, name="Credit", code="credit", kind=ServiceKind.CREDIT)
    tier = Tier.objects.create(practice=practice, code="b", name="B", processor_name="Membership — B", price_cents=100)
    TierBenefit.objects.create(tier=tier, service=credit, quantity_per_cycle=10_000_000)
    pairs = []
    for i in range(count):
        member = Member.objects.create(practice=practice, member_number=f"B{i}", first_name="Bench", last_name=str(i))
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key=f"e{i}",
                                   now=now)
        services.refill_entitlements(membership=m, cycle_key=f"c{i}", actor=services.Actor.system(), now=now)
        pairs.append((m.pk, credit.pk))
    return pairs


def run() -> None:
    from ._support import fresh_database

    with fresh_database("bench_ledger"):
        pairs = _setup(max(CLIENTS))
        print(f"{'clients':>8} {'service/s':>10} {'raw SQL/s':>10} {'ratio':>7}   {'same work in SQL/s':>18} "
              f"{'ratio':>7}   CPU ms/redemption: {'service':>7} {'raw':>6} {'same':>6}")
        for clients in CLIENTS:
            service_rate, service_cpu = _measure("service", pairs, clients)
            raw_rate, raw_cpu = _measure("raw", pairs, clients)
            same_rate, same_cpu = _measure("raw_same_work", pairs, clients)
            print(f"{clients:>8} {service_rate:>10.0f} {raw_rate:>10.0f} {service_rate / raw_rate:>7.2f}   "
                  f"{same_rate:>18.0f} {service_rate / same_rate:>7.2f}   {'':>18} {service_cpu:>7.3f} "
                  f"{raw_cpu:>6.3f} {same_cpu:>6.3f}", flush=True)
        print(f"(each figure: {DURATION:.0f} s of one-cent redemptions, one process per client, each on its own "
              f"membership; goal: ratio to the raw conditional UPDATE ≥ 0.33. 'Same work in SQL' is the "
              f"redemption's statements hand-written as separate statements in one transaction — lock, balance, "
              f"lot, entry, event; the service beats it by doing the common walk-in in one database call. CPU ms "
              f"per redemption: the client processes and their PostgreSQL backends, from /proc)")
