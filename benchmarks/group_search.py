"""The member search across a group (PostgreSQL, database `bench_group_search`): a group of 20
practices with a clinic each and 100,000 members (another group's 20,000 members beside it, the same
names, never found), searched from the front desk of one of them. Prints the search page's server
time (p50/p95, in process through Django's test client: middleware, session, permission, the
group's practices, the search, the members' memberships, the audit rows, the template) for each kind
of search — a name fragment inside a last name (the trigram index), a last-name prefix, "first last",
phone, email, member number — beside the floor (the search statements alone, the indexes' own time),
the CPU per search (this process and its PostgreSQL backend), the queries per page and the plan's
scans; and the floor of any staff page, the search page with no query (session, user, permissions,
profile, the template), with its CPU. Goal: p95 ≤ 50 ms."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
PRACTICES = int(os.environ.get("BENCH_LOCATIONS", "20"))
OTHER_GROUP = MEMBERS // 5
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "300"))
BATCH = 10000


def _names():
    from .pages import FIRST, LAST

    return FIRST, LAST


def _seed(now):
    """The group and its members (COPY through `bulk_rows.insert_rows`: ids from the sequence, rows
    streamed), each member with an active membership; then ANALYZE."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from memberships.models import (
        Location,
        Member,
        Membership,
        MembershipStatus,
        Organization,
        Practice,
        StaffProfile,
        Tier,
    )
    from memberships.roles import FRONT_DESK
    from memberships.services.bulk_rows import insert_rows

    first_names, last_names = _names()
    rng = random.Random(42)
    started = time.perf_counter()

    def group(slug: str, practices: int):
        org = Organization.objects.create(name=f"{slug.title()} Group", slug=slug)
        out = []
        for n in range(practices):
            practice = Practice.objects.create(name=f"{slug.title()} {n + 1:02d}", slug=f"{slug}-{n + 1:02d}",
                                               organization=org)
            location = Location.objects.create(practice=practice, name=f"{slug.title()} Clinic {n + 1:02d}")
            tier = Tier.objects.create(practice=practice, code="glow", name="Glow",
                                       processor_name="Membership — Tier B", price_cents=19900)
            out.append((practice, location, tier))
        return out

    ours, theirs = group("glow", PRACTICES), group("elsewhere", 1)
    plan = [(ours[i % PRACTICES], i) for i in range(MEMBERS)] + [(theirs[0], MEMBERS + i) for i in range(OTHER_GROUP)]
    member_fields = ["practice", "home_location", "member_number", "first_name", "last_name", "email", "phone",
                     "search_name", "sms_consent"]
    for lo in range(0, len(plan), BATCH):
        rows, tiers = [], []
        for (practice, location, tier), i in plan[lo:lo + BATCH]:
            first, last = rng.choice(first_names), rng.choice(last_names)
            rows.append((practice.pk, location.pk, f"M{i + 1:07d}", first, last,
                         f"{first}.{last}.{i}@example.com".lower(), f"+1415{2000000 + i:07d}",
                         f"{first} {last}".lower(), True))
            tiers.append(tier.pk)
        ids = insert_rows(Member, member_fields, rows)
        insert_rows(Membership, ["member", "tier", "status", "started_at", "current_period_start",
                                 "current_period_end", "cycle_number"],
                    [(member_id, tier_id, MembershipStatus.ACTIVE, now - timedelta(days=40), now - timedelta(days=10),
                      now + timedelta(days=20), 1) for member_id, tier_id in zip(ids, tiers)])
    user = User.objects.create_user("bench-desk", password="bench-Pass-2026!")
    user.groups.add(Group.objects.get(name=FRONT_DESK))
    practice, location, _ = ours[0]
    StaffProfile.objects.create(user=user, practice=practice, location=location)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return user, time.perf_counter() - started


def _plan(practice_ids, q) -> str:
    """The scans of each statement one search runs (a name fragment: the best ids, then their rows)."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from memberships import selectors

    with CaptureQueriesContext(connection) as ctx:
        list(selectors.search_members(practice_ids=practice_ids, query=q))
    found = []
    for query in ctx.captured_queries:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        found.append("; ".join(dict.fromkeys(re.findall(
            r"((?:Parallel )?(?:Bitmap Heap|Bitmap Index|Index Only|Index|Seq) Scan(?: using \S+)?(?: on \S+)?)",
            plan))))
    return " | ".join(found)


def run() -> None:
    from urllib.parse import urlencode

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from memberships import selectors
    from memberships.models import Member

    from ._support import cpu_meter, fresh_database, summary_ms, test_environment

    test_environment()
    with fresh_database("bench_group_search") as name:
        user, seeded = _seed(timezone.now())
        print(f"seeded {MEMBERS:,} members in {PRACTICES} practices of one group (a clinic each) and "
              f"{OTHER_GROUP:,} of another group, with memberships, in {seeded:.1f} s")
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        practice_ids = selectors.searchable_practice_ids(user)
        home = reverse("memberships:home")
        rng = random.Random(7)
        sample = list(Member.objects.filter(practice_id__in=practice_ids).order_by("?")
                      .values("first_name", "last_name", "email", "phone", "member_number")[:SAMPLES])

        def inside(last: str) -> str:
            """Three or four letters from inside the last name (not its start): only a trigram finds it."""
            if len(last) < 5:
                return last[1:].lower()
            start = rng.randrange(1, len(last) - 3)
            return last[start:start + rng.choice((3, 4))].lower()

        kinds = {
            "name fragment": lambda m: inside(m["last_name"]),
            "last-name prefix": lambda m: m["last_name"][:3],
            "first last": lambda m: f"{m['first_name']} {m['last_name']}",
            "phone": lambda m: f"({m['phone'][2:5]}) {m['phone'][5:8]}-{m['phone'][8:]}",
            "email": lambda m: m["email"],
            "member number": lambda m: m["member_number"],
        }
        per_kind = max(SAMPLES // len(kinds), 20)
        plan = [(kind, make(m)) for kind, make in kinds.items() for m in sample[:per_kind]]
        for _, q in plan[:30]:                                                     # warm up
            client.get(f"{home}?{urlencode({'q': q})}")
        rng.shuffle(plan)
        page: dict[str, list[float]] = {}
        with cpu_meter(name) as cpu:
            for kind, q in plan:
                started = time.perf_counter()
                response = client.get(f"{home}?{urlencode({'q': q})}")
                page.setdefault(kind, []).append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"search {q!r}: HTTP {response.status_code}")
        # the floor of a page: the empty search page (session, user, permissions, profile, template)
        plain: list[float] = []
        with cpu_meter(name) as plain_cpu:
            for _ in range(len(plan) // 3):
                started = time.perf_counter()
                client.get(home)
                plain.append(time.perf_counter() - started)
        floor: dict[str, list[float]] = {}
        for kind, q in plan:
            started = time.perf_counter()
            list(selectors.search_members(practice_ids=practice_ids, query=q))
            floor.setdefault(kind, []).append(time.perf_counter() - started)
        one, five, _ = os.getloadavg()
        print(f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs")
        for kind, make in kinds.items():
            print(f"search by {kind:<17} page {summary_ms(page[kind])}")
            print(f"  {'':<17}         floor (the search statements alone) {summary_ms(floor[kind])}  "
                  f"[{_plan(practice_ids, make(sample[0]))}]")
        every = [s for samples in page.values() for s in samples]
        print(f"search across the group, all kinds: page {summary_ms(every)}")
        print(f"  floor, all kinds:                      {summary_ms([s for v in floor.values() for s in v])}")
        print(f"  {cpu.describe(len(plan), 'search')}")
        print(f"floor of a page, the search page with no query: {summary_ms(plain)}")
        print(f"  {plain_cpu.describe(len(plain), 'page')}")
        with CaptureQueriesContext(connection) as ctx:
            client.get(f"{home}?{urlencode({'q': 'arci'})}")
        print(f"SQL queries per search page: {len(ctx.captured_queries)} (of which 4 are session, user, "
              "permissions and profile)")
        print("goal: p95 ≤ 50 ms")
        connection.close()
