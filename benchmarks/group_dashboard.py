"""The group dashboard on a group of 20 locations and 100,000 members (PostgreSQL, database
`bench_group_dashboard`): server time of GET /group/ (p50/p95, in process through Django's test
client: middleware, session, the group manager's check, the queries and the template), its number of
SQL queries — with the same page on a 2-location group beside it, to show the count does not grow —
and the CPU of this process and its PostgreSQL backend per request (the group page alone, and the
floor alone). The page reads the figures the worker computed (`billing.group.snapshot`); what the
worker spends computing them is printed too (wall and CPU per refresh, with its backend), since that
is where the work went.

Measured in the same run, interleaved at random with it:
- a ceiling: what the owner did before, one practice dashboard (`/manage/`) per practice of the group,
  switching practice between them (4 practices: the time of the 4 pages together);
- a floor: the location page (`/location/`), a staff page with the session and the group manager's
  check but no figures.

Seeded by COPY (`memberships.services.bulk_rows.insert_rows`): 4 practices of 5 clinics each, members
spread over the clinics (1 in 50 without a home location), each with an active membership, two
balances and a grant; 6% with a failed renewal in the last 8 weeks (half recovered: events and a
dunning case), 20% with expired credit, 1 in 1,000 with a disputed redemption. Goal: p95 ≤ 300 ms,
the same number of queries for 2 and 20 locations."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

MEMBERS = int(os.environ.get("BENCH_MEMBERS", "100000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "25"))
PRACTICES, CLINICS = 4, 5
BATCH = 10000


def _catalogue(practice, now):
    from billing.models import DunningPolicy
    from memberships.models import Service, ServiceKind, Tier, TierBenefit

    facial = Service.objects.create(practice=practice, name="HydraFacial", code="hydrafacial", unit_value_cents=25000)
    credit = Service.objects.create(practice=practice, name="Product credit", code="credit", kind=ServiceKind.CREDIT,
                                    unit_value_cents=1)
    tier = Tier.objects.create(practice=practice, code="glow", name="Glow", processor_name="Membership — Tier B",
                               price_cents=19900)
    TierBenefit.objects.create(tier=tier, service=facial, quantity_per_cycle=1)
    TierBenefit.objects.create(tier=tier, service=credit, quantity_per_cycle=5000)
    policy = DunningPolicy.objects.create(practice=practice, created_at=now)
    return tier, facial, credit, policy


def _seed_batch(rows, tiers, now, rng):
    """rows: (number, practice id, home location id or None)."""
    from billing.models import DunningCase
    from memberships.models import (
        ActorType, EntitlementBalance, EntryKind, Event, EventKind, LedgerEntry, Member, Membership,
        MembershipStatus,
    )
    from memberships.services.bulk_rows import insert_rows

    members = insert_rows(Member, ("practice", "home_location", "member_number", "first_name", "last_name",
                                   "search_name", "email"),
                          ((p, home, f"G{n:06d}", "Ana", f"Member{n}", f"ana member{n}", f"m{n}@example.com")
                           for n, p, home in rows))
    started = now - timedelta(days=120)
    ships = insert_rows(Membership, ("member", "tier", "status", "started_at", "current_period_start",
                                     "current_period_end", "cycle_number"),
                        ((m, tiers[p][0].pk, MembershipStatus.ACTIVE, started, now - timedelta(days=10),
                          now + timedelta(days=20), 4) for m, (_, p, _) in zip(members, rows)))
    facial_credit = [(tiers[p][1].pk, tiers[p][2].pk) for _, p, _ in rows]
    insert_rows(EntitlementBalance, ("membership", "service", "balance"),
                [(s, f, 1) for s, (f, _) in zip(ships, facial_credit)]
                + [(s, c, 3000) for s, (_, c) in zip(ships, facial_credit)])
    entries = [(s, f, EntryKind.GRANT, "paid", 1, 1, ActorType.PROCESSOR, "Cycle 4 refill", f"g:{s}",
                now - timedelta(days=10)) for s, (f, _) in zip(ships, facial_credit)]
    events, cases = [], []
    for i, (s, m, (n, p, _)) in enumerate(zip(ships, members, rows)):
        roll = rng.random()
        if roll < 0.2:                       # unused credit expired at the last boundary
            entries.append((s, facial_credit[i][1], EntryKind.EXPIRE, "paid", -2000, 3000, ActorType.SYSTEM,
                            "Expired", f"x:{s}", now - timedelta(days=rng.randint(5, 300))))
        if roll < 0.06:                      # a renewal failed in the last 8 weeks; half recovered
            failed_at = now - timedelta(days=rng.randint(1, 55))
            recovered = roll < 0.03
            payload = {"invoice_ref": f"in_{n}", "amount_cents": 19900}
            events.append((p, m, s, EventKind.PAYMENT_FAILED, "Charge failed", payload, ActorType.PROCESSOR, failed_at))
            if recovered:
                events.append((p, m, s, EventKind.RECOVERED, "Recovered", payload, ActorType.PROCESSOR,
                               failed_at + timedelta(hours=30)))
            cases.append((p, m, s, tiers[p][3].pk, f"in_{n}", 19900, "recovered" if recovered else "open",
                          failed_at, failed_at, failed_at + timedelta(hours=30) if recovered else None))
    insert_rows(LedgerEntry, ("membership", "service", "kind", "source", "quantity", "balance_after", "actor_type",
                              "reason", "idempotency_key", "created_at"), entries)
    insert_rows(Event, ("practice", "member", "membership", "kind", "summary", "payload", "actor_type", "created_at"),
                events)
    insert_rows(DunningCase, ("practice", "member", "membership", "policy", "invoice_ref", "amount_cents", "status",
                              "last_failure_at", "opened_at", "closed_at"), cases)


def _seed(now):
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from memberships.models import Location, Organization, Practice, StaffProfile
    from memberships.roles import GROUP_MANAGER

    rng = random.Random(2026)
    org = Organization.objects.create(name="Bench Group", slug="bench-group")
    practices = [Practice.objects.create(name=f"Bench {i}", slug=f"bench-{i}", organization=org)
                 for i in range(PRACTICES)]
    clinics = [Location.objects.create(practice=p, name=f"{p.name} clinic {j}") for p in practices
               for j in range(CLINICS)]
    tiers = {p.pk: _catalogue(p, now) for p in practices}
    started = time.perf_counter()
    for lo in range(0, MEMBERS, BATCH):
        rows = []
        for n in range(lo, min(lo + BATCH, MEMBERS)):
            clinic = clinics[n % len(clinics)]
            rows.append((n, clinic.practice_id, None if n % 50 == 0 else clinic.pk))
        _seed_batch(rows, tiers, now, rng)
    small = Organization.objects.create(name="Small Group", slug="small-group")
    two = Practice.objects.create(name="Small", slug="small", organization=small)
    for j in range(2):
        Location.objects.create(practice=two, name=f"Small clinic {j}")
    tiers[two.pk] = _catalogue(two, now)
    _seed_batch([(MEMBERS + n, two.pk, None) for n in range(200)], tiers, now, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    users = []
    for organization, practice in ((org, practices[0]), (small, two)):
        user = User.objects.create_user(f"owner-{organization.slug}", is_staff=True)
        user.groups.add(Group.objects.get(name=GROUP_MANAGER))
        StaffProfile.objects.create(user=user, practice=practice, organization=organization)
        users.append(user)
    return users, practices, time.perf_counter() - started


def _client(user):
    from django.test import Client

    from tests.support.two_factor import give_authenticator, verify_session

    give_authenticator(user)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    verify_session(client, user)
    return client


def _queries(client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _practice_dashboards(client, user, practices):
    """The ceiling: each practice's own dashboard in turn (the profile switched between them)."""
    from memberships.models import StaffProfile

    for practice in practices:
        StaffProfile.objects.filter(user=user).update(practice=practice)
        response = client.get("/manage/")
        assert response.status_code == 200, response.status_code
    StaffProfile.objects.filter(user=user).update(practice=practices[0])


def run() -> None:
    from django.conf import settings
    from django.utils import timezone

    from ._support import cpu_meter, fresh_database, summary_ms, test_environment

    test_environment()
    with fresh_database("bench_group_dashboard") as name:
        now = timezone.now()
        (owner, small_owner), practices, seeded = _seed(now)
        print(f"seeded {MEMBERS:,} members over {PRACTICES * CLINICS} locations of {PRACTICES} practices "
              f"in {seeded:.1f} s")
        client, small = _client(owner), _client(small_owner)
        from billing.group import snapshot

        for user in (owner, small_owner):                  # what the worker does every few minutes
            snapshot.refresh(organization_id=user.staff_profile.organization_id, now=timezone.now())
        for _ in range(2):                                           # warm up (sessions written once)
            client.get("/group/")
            small.get("/group/")
            _practice_dashboards(client, owner, practices)
        print(f"SQL queries: /group/ {_queries(client, '/group/')} with 20 locations, "
              f"{_queries(small, '/group/')} with 2; one practice dashboard (/manage/) {_queries(client, '/manage/')}")
        refresh_n = max(SAMPLES // 5, 3)
        refresh_wall = []
        with cpu_meter(name) as refreshing:
            for _ in range(refresh_n):
                started = time.perf_counter()
                snapshot.refresh(organization_id=owner.staff_profile.organization_id, now=timezone.now())
                refresh_wall.append(time.perf_counter() - started)
        print(f"the worker's refresh of the group's figures: {summary_ms(refresh_wall)}; "
              f"{refreshing.describe(refresh_n, 'refresh')}")
        plan = ["group", "practices", "floor"] * SAMPLES
        random.Random(5).shuffle(plan)
        samples = {"group": [], "practices": [], "floor": []}
        one_os = os.getloadavg()[0]
        with cpu_meter(name) as cpu:
            for kind in plan:
                started = time.perf_counter()
                if kind == "group":
                    assert client.get("/group/").status_code == 200
                elif kind == "floor":
                    assert client.get("/location/").status_code in (200, 302)
                else:
                    _practice_dashboards(client, owner, practices)
                samples[kind].append(time.perf_counter() - started)
        print(f"group dashboard, 20 locations (the figures the worker computed): {summary_ms(samples['group'])}")
        print(f"ceiling, {PRACTICES} practice dashboards in turn: {summary_ms(samples['practices'])}")
        print(f"floor, the location page:             {summary_ms(samples['floor'])}")
        print(f"all requests (group, {PRACTICES}-dashboard rounds, floor): {cpu.describe(len(plan), 'request')}")
        for label, url in (("group dashboard", "/group/"), ("floor (location page)", "/location/")):
            alone_n = max(SAMPLES // 2, 5)
            with cpu_meter(name) as alone:
                for _ in range(alone_n):
                    client.get(url)
            print(f"{label}, alone: {alone.describe(alone_n, 'request')}")
        print(f"load average {one_os:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs")
        print("goal: group dashboard p95 ≤ 300 ms; the same number of queries for 2 and 20 locations "
              f"(the figures are at most GROUP_FIGURES_REFRESH_SECONDS = {settings.GROUP_FIGURES_REFRESH_SECONDS} s old)")
