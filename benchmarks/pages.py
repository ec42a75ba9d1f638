"""The staff pages on 100,000 members (PostgreSQL, database `bench_pages`): server time of the chart
panel and of member search (p50/p95, measured in process through Django's test client, so it
includes middleware, session, permission checks, queries and template rendering, not the network)
and the number of SQL queries per page, for a member with a short history and one with a long one.
Goal: p95 ≤ 50 ms and ≤ 10 queries per page."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "300"))
BATCH = 5000
LONG_HISTORY = 2000

FIRST = ["Ana", "Maya", "Olivia", "Emma", "Sofia", "Isabella", "Mia", "Amelia", "Harper", "Evelyn", "Chloe",
         "Grace", "Lily", "Zoe", "Nora", "Leah", "Ava", "Ella", "Aria", "Camila", "Luna", "Hannah", "Julia",
         "Sarah", "Rachel", "Laura", "Nina", "Priya", "Mei", "Yuki", "Fatima", "Amara", "Elena", "Rosa", "Clara",
         "James", "Daniel", "Lucas", "Noah", "Liam", "Ethan", "Mason", "Leo", "Omar", "Raj", "Kenji", "Diego"]
LAST = ["Garcia", "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
        "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
        "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Kim", "Patel",
        "Chen", "Wang", "Singh", "Khan", "Ali", "Cohen", "Murphy", "O'Brien", "Novak", "Kowalski", "Rossi"]


def _seed(now):
    """100,000 members, each with a Glow membership, two balances, a grant and three timeline events;
    one member with a long history. Bulk inserts in batches of 5,000."""
    from django.db import connection

    from memberships.models import (
        ActorType,
        EntitlementBalance,
        EntryKind,
        Event,
        EventKind,
        LedgerEntry,
        Member,
        Membership,
        MembershipStatus,
        Practice,
        RolloverRule,
        Service,
        ServiceKind,
        StaffProfile,
        Tier,
        TierBenefit,
    )

    rng = random.Random(42)
    practice = Practice.objects.create(name="Bench Aesthetics", slug="bench")
    facial = Service.objects.create(practice=practice, name="HydraFacial", code="hydrafacial", unit_value_cents=25000)
    credit = Service.objects.create(practice=practice, name="Product credit", code="credit", kind=ServiceKind.CREDIT,
                                    unit_value_cents=1)
    tier = Tier.objects.create(practice=practice, code="glow", name="Glow", processor_name="Membership — Tier B",
                               price_cents=19900)
    TierBenefit.objects.create(tier=tier, service=facial, quantity_per_cycle=1, rollover=RolloverRule.CARRY_OVER,
                               rollover_cap=2)
    TierBenefit.objects.create(tier=tier, service=credit, quantity_per_cycle=5000)

    started = time.perf_counter()
    for lo in range(0, MEMBERS, BATCH):
        members = []
        for i in range(lo, min(lo + BATCH, MEMBERS)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            members.append(Member(
                practice=practice, member_number=f"M{i + 1:06d}", first_name=first, last_name=last,
                email=f"{first}.{last}.{i}@example.com".lower(), phone=f"+1415{2000000 + i:07d}",
                search_name=f"{first} {last}".lower(), sms_consent=True,
            ))
        members = Member.objects.bulk_create(members)
        memberships = Membership.objects.bulk_create([
            Membership(member=m, tier=tier, status=MembershipStatus.ACTIVE, started_at=now - timedelta(days=40),
                       current_period_start=now - timedelta(days=10), current_period_end=now + timedelta(days=20),
                       cycle_number=1, last_refill_at=now - timedelta(days=10)) for m in members])
        EntitlementBalance.objects.bulk_create(
            [EntitlementBalance(membership=ms, service=facial, balance=1) for ms in memberships]
            + [EntitlementBalance(membership=ms, service=credit, balance=5000) for ms in memberships])
        LedgerEntry.objects.bulk_create([
            LedgerEntry(membership=ms, service=facial, kind=EntryKind.GRANT, source="paid", quantity=1,
                        balance_after=1, actor_type=ActorType.PROCESSOR, reason="Cycle 1 refill",
                        idempotency_key=f"seed:{ms.pk}", created_at=now - timedelta(days=10)) for ms in memberships])
        events = []
        for ms in memberships:
            for days, kind, summary in ((40, EventKind.ENROLLED, "Enrolled in Glow at $199.00/month"),
                                        (10, EventKind.CHARGE_SUCCEEDED, "Charge of $199.00 succeeded"),
                                        (10, EventKind.REFILLED, "Cycle 1 refilled (2 benefits)")):
                events.append(Event(practice=practice, member_id=ms.member_id, membership=ms, kind=kind,
                                    summary=summary, payload={}, actor_type=ActorType.SYSTEM,
                                    created_at=now - timedelta(days=days)))
        Event.objects.bulk_create(events)
    seeded = time.perf_counter() - started

    # One member with a long history: LONG_HISTORY redemptions (entries + events).
    long_ms = Membership.objects.select_related("member").order_by("id")[MEMBERS // 2]
    EntitlementBalance.objects.filter(membership=long_ms, service=credit).update(balance=10_000_000)
    entries = LedgerEntry.objects.bulk_create([
        LedgerEntry(membership=long_ms, service=credit, kind=EntryKind.REDEEM, quantity=-1,
                    balance_after=10_000_000 - n, actor_type=ActorType.STAFF, reason="bench",
                    idempotency_key=f"long:{n}", created_at=now - timedelta(minutes=LONG_HISTORY - n))
        for n in range(LONG_HISTORY)])
    Event.objects.bulk_create([
        Event(practice=practice, member_id=long_ms.member_id, membership=long_ms, kind=EventKind.REDEEMED,
              summary="Redeemed $0.01 Product credit", payload={"entry_id": e.pk, "service_id": credit.pk,
                                                               "quantity": 1}, actor_type=ActorType.STAFF,
              created_at=e.created_at) for e in entries])

    from django.contrib.auth.models import Group, User

    from memberships.roles import FRONT_DESK

    user = User.objects.create_user("bench-desk", password="bench-Pass-2026!")
    user.groups.add(Group.objects.get(name=FRONT_DESK))
    StaffProfile.objects.create(user=user, practice=practice)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return user, long_ms.member_id, seeded


CPU: dict[str, list[float]] = {}


def _time(client, urls: list[str], label: str = "") -> list[float]:
    """Wall-clock seconds per request; the web process's own CPU seconds go to CPU[label] (on a
    shared, busy machine wall time mostly measures waiting for a core)."""
    samples = []
    for url in urls:
        started, cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        samples.append(time.perf_counter() - started)
        CPU.setdefault(label, []).append(time.process_time() - cpu)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
    return samples


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return len(ctx.captured_queries)


def _plan(queryset) -> str:
    """The scan nodes of the query's plan, to show the search uses indexes."""
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    import re

    scans = re.findall(r"((?:Parallel )?(?:Bitmap Heap|Bitmap Index|Index Only|Index|Seq) Scan"
                       r"(?: using \S+)?(?: on \S+)?)", plan)
    return "; ".join(dict.fromkeys(scans))


def run() -> None:
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from memberships import selectors

    from ._support import fresh_database, summary_ms, test_environment

    test_environment()
    with fresh_database("bench_pages"):
        now = timezone.now()
        user, long_member_id, seeded = _seed(now)
        print(f"seeded {MEMBERS:,} members with memberships, balances, entries and events in {seeded:.1f} s")
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        rng = random.Random(7)
        from memberships.models import Member

        ids = list(Member.objects.order_by("id").values_list("id", flat=True))
        chart = lambda pk: reverse("memberships:chart", args=[pk])  # noqa: E731
        _time(client, [chart(rng.choice(ids)) for _ in range(20)])  # warm up
        print(_load())
        samples = _time(client, [chart(rng.choice(ids)) for _ in range(SAMPLES)], "chart")
        print(f"chart panel, random members:        {summary_ms(samples)}")
        print(f"  web process CPU per request:      {summary_ms(CPU['chart'])}")
        long_samples = _time(client, [chart(long_member_id)] * max(SAMPLES // 3, 20), "long")
        print(f"chart panel, {LONG_HISTORY:,}-entry history:    {summary_ms(long_samples)}")
        print(f"  web process CPU per request:      {summary_ms(CPU['long'])}")
        short_q, long_q = _queries(client, chart(ids[0])), _queries(client, chart(long_member_id))
        print(f"SQL queries per chart page: {short_q} (short history), {long_q} (long history); "
              "of which 6 are session, user, permissions and the session save")

        home = reverse("memberships:home")
        members = list(Member.objects.order_by("?").values("first_name", "last_name", "email", "phone",
                                                           "member_number")[:SAMPLES])
        kinds = {
            "last-name prefix": lambda m: m["last_name"][:3],
            "first last": lambda m: f"{m['first_name']} {m['last_name']}",
            "phone": lambda m: f"({m['phone'][2:5]}) {m['phone'][5:8]}-{m['phone'][8:]}",
            "email": lambda m: m["email"],
            "member number": lambda m: m["member_number"],
        }
        from urllib.parse import urlencode

        all_samples = []
        for name, make in kinds.items():
            urls = [f"{home}?{urlencode({'q': make(m)})}" for m in members[: max(SAMPLES // 3, 20)]]
            s = _time(client, urls, "search")
            all_samples += s
            query = selectors.search_members(practice_id=user.staff_profile.practice_id, query=make(members[0]))
            print(f"search by {name:<17} {summary_ms(s)}  [{_plan(query)}]")
        print(f"search, all kinds:                   {summary_ms(all_samples)}")
        print(f"  web process CPU per request:      {summary_ms(CPU['search'])}")
        print(_load())
        print(f"SQL queries per search page: {_queries(client, f'{home}?q=gar')}")
        print("goal: p95 ≤ 50 ms and ≤ 10 queries per page")
