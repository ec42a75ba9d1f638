"""The group dashboard (/group/): every location of the group side by side and in total, for group
managers only; its totals are the sum of the practices' own dashboards; its queries do not grow with
the number of locations; its CSV holds the same lines."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import metrics
from billing.group.figures import FIGURES, group_dashboard
from billing.models import Discrepancy, DiscrepancyKind, ReconciliationRun
from memberships import services
from memberships.models import Location, Member, Organization
from memberships.roles import FRONT_DESK, MANAGER
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier, staff_user
from tests.support.two_factor import give_authenticator

from .group_world import build_group, group_manager

DAY = timedelta(days=1)


def _fail(membership, ref, at):
    from tests.billing.test_payback import fail

    fail(membership, ref, at)


def _pay(membership, ref, at):
    from tests.billing.test_payback import pay

    pay(membership, ref, at)


def _member(practice, tier, home, name, now):
    member = MemberFactory(practice=practice, last_name=name, home_location=home)
    return active_membership(tier=tier, member=member, now=now - 40 * DAY, cycle_key=f"c1-{name}")


@pytest.fixture
def populated(db):
    """Glow (Downtown, Uptown; Los Angeles) and Bloom (Harbor; Tokyo — its weeks start at another
    moment) with members at each clinic, one without a home location in each practice, and a Bloom
    member whose home is Glow's Uptown; failed payments open and recovered, expired credit, a frozen
    balance, a dispute and reconciliation work spread over them."""
    world = build_group()
    now = timezone.now()
    world.bloom.timezone = "Asia/Tokyo"
    world.bloom.save(update_fields=["timezone"])
    manager = get_user_model().objects.create_user("mgr", is_staff=True)
    glow_t, glow_facial, _ = glow_tier(world.glow)
    bloom_t, bloom_facial, _ = glow_tier(world.bloom)
    m = {name: _member(practice, tier, home, name, now) for name, practice, tier, home in (
        ("Ames", world.glow, glow_t, world.downtown), ("Baker", world.glow, glow_t, world.downtown),
        ("Cole", world.glow, glow_t, world.uptown), ("Diaz", world.glow, glow_t, None),
        ("Egan", world.bloom, bloom_t, world.harbor), ("Ford", world.bloom, bloom_t, world.harbor),
        ("Gray", world.bloom, bloom_t, None), ("Hale", world.bloom, bloom_t, world.uptown))}
    from memberships.models import Membership, TierLocationPrice

    TierLocationPrice.objects.create(tier=bloom_t, location=world.harbor, price_cents=17900)   # Harbor's own price
    Membership.objects.filter(pk__in=[m["Egan"].pk, m["Ford"].pk]).update(price_location=world.harbor)
    _fail(m["Ames"], "in_ames", now - 10 * DAY)
    _pay(m["Ames"], "in_ames", now - 8 * DAY)                 # recovered
    _fail(m["Cole"], "in_cole", now - 3 * DAY)                # open
    _fail(m["Egan"], "in_egan", now - 5 * DAY)                # open
    _fail(m["Gray"], "in_gray", now - 20 * DAY)
    _pay(m["Gray"], "in_gray", now - 2 * DAY)
    _fail(m["Hale"], "in_hale", now - 4 * DAY)                # open, at Uptown
    for name in ("Baker", "Ford"):                            # the next cycle: unused product credit expires
        services.refill_entitlements(membership=m[name], cycle_key=f"c2-{name}", actor=services.Actor.processor(),
                                     now=now - 6 * DAY)
    services.cancel_membership(membership=m["Diaz"], actor=services.Actor.system(), idempotency_key="cancel-diaz",
                               now=now - DAY)
    entry = services.redeem_entitlement(membership=m["Egan"], service=bloom_facial, actor=services.Actor.system(),
                                        idempotency_key="r-egan", now=now - 2 * DAY)
    from django.contrib.auth.models import Group

    from memberships.models import StaffProfile

    StaffProfile.objects.create(user=manager, practice=world.bloom)
    manager.groups.add(Group.objects.get(name=MANAGER))
    services.reverse_entry(entry=entry, actor=services.Actor.staff(manager), reason="Member disputes it",
                           idempotency_key="rv-egan", now=now - DAY, dispute=True)
    for practice, member, tag in ((world.glow, m["Ames"].member, "a"), (world.bloom, None, "b")):
        run = ReconciliationRun.objects.create(practice=practice, started_at=now - 2 * DAY)
        Discrepancy.objects.create(practice=practice, fingerprint=tag * 64, member=member,
                                   kind=DiscrepancyKind.MISSING, message="missing at the processor",
                                   first_seen_run=run, last_seen_run=run, first_seen_at=now - 2 * DAY,
                                   last_seen_at=now - 2 * DAY, resolved_at=now - DAY)
    return world, m, now


def _practice_figures(practice, now) -> dict:
    """One practice's figures, from its own dashboard (billing.metrics.dashboard)."""
    d = metrics.dashboard(practice_id=practice.pk, now=now)
    weeks = d.payback
    return {
        "members": d.members.total_members[-1], "mrr_cents": d.members.total_mrr_cents[-1],
        "failed_open_count": d.money.open_count, "failed_open_cents": d.money.open_cents,
        "recovered_cents": sum(d.money.recovered_cents), "breakage_cents": d.breakage.total_cents,
        "liability_cents": d.liability.total_cents, "frozen_cents": d.liability.frozen_cents,
        "failed_payments": sum(w.failed_payments for w in weeks),
        "failed_addressed": sum(w.failed_addressed for w in weeks),
        "failed_recovered": sum(w.failed_recovered for w in weeks),
        "discrepancies_found": sum(w.discrepancies_found for w in weeks),
        "discrepancies_resolved": sum(w.discrepancies_resolved for w in weeks),
        "disputes": sum(w.disputes for w in weeks),
    }


def test_the_totals_are_the_sum_of_the_practice_dashboards(populated):
    world, _, now = populated
    board = group_dashboard(organization_id=world.organization.pk, now=now)
    glow, bloom = _practice_figures(world.glow, now), _practice_figures(world.bloom, now)
    expected = {name: glow[name] + bloom[name] for name in FIGURES}
    assert {name: getattr(board.total, name) for name in FIGURES} == expected
    # and every figure is there to compare: something in each
    assert all(expected[name] for name in FIGURES), expected
    # the rows add up to the total
    assert {name: sum(getattr(r, name) for r in board.rows) for name in FIGURES} == expected
    # the group's charts are the dashboard's figures over both practices at once
    ids = [world.bloom.pk, world.glow.pk]
    liability = metrics.credit_liability(practice_id=ids)
    assert [(s.service_id, s.quantity, s.value_cents) for s in board.charts.liability.services] == \
        [(s.service_id, s.quantity, s.value_cents) for s in liability.services]
    assert board.charts.liability.frozen_cents == liability.frozen_cents > 0
    with timezone.override(board.zone):         # the group's charts are in the group's zone (Bloom's, Tokyo)
        assert board.charts.money == metrics.failed_vs_recovered(practice_id=ids, now=now)


def test_each_location_shows_its_members_figures(populated):
    world, m, now = populated
    board = group_dashboard(organization_id=world.organization.pk, now=now)
    rows = {row.name: row for row in board.rows}
    # By practice (by name), its clinics, then its members without a home location.
    assert list(rows) == ["Harbor", "Bloom Med Spa — no home location", "Downtown", "Uptown",
                          "Glow Aesthetics — no home location"]
    assert (rows["Downtown"].members, rows["Uptown"].members, rows["Harbor"].members) == (2, 2, 2)
    assert rows["Glow Aesthetics — no home location"].members == 0        # Diaz cancelled
    assert rows["Glow Aesthetics — no home location"].frozen_cents > 0
    assert rows["Downtown"].mrr_cents == 2 * 19900 and rows["Harbor"].mrr_cents == 2 * 17900   # Harbor's price
    # Uptown: Cole's and Hale's (a Bloom member whose home is Uptown) failures are open there.
    assert (rows["Uptown"].failed_open_count, rows["Uptown"].failed_open_cents) == (2, 2 * 19900)
    assert (rows["Downtown"].failed_open_count, rows["Downtown"].recovered_cents) == (0, 19900)
    # Next cycles: Baker's and Ford's, and Ames's recovered renewal — each expires $50 of unused credit.
    assert rows["Downtown"].breakage_cents == 10000 and rows["Harbor"].breakage_cents == 5000
    assert rows["Harbor"].disputes == 1 and rows["Downtown"].discrepancies_found == 1
    assert rows["Bloom Med Spa — no home location"].discrepancies_resolved == 1
    assert rows["Bloom Med Spa — no home location"].recovered_cents == 19900


def _group_of(locations: int, now) -> Organization:
    org = Organization.objects.create(name=f"Group {locations}", slug=f"group-{locations}")
    practice = PracticeFactory(slug=f"p{locations}", name=f"Practice {locations}", organization=org)
    second = PracticeFactory(slug=f"q{locations}", name=f"Second {locations}", organization=org)
    tier, _, _ = glow_tier(practice)
    for i in range(locations):
        home = Location.objects.create(practice=practice if i % 2 else second, name=f"Clinic {i}")
        membership = _member(practice, tier, home, f"L{locations}-{i}", now)
        _fail(membership, f"in_{locations}_{i}", now - DAY)
    return org


def test_the_number_of_queries_does_not_grow_with_the_locations(db):
    now = timezone.now()
    counts = []
    for n in (2, 6):
        org = _group_of(n, now)
        with CaptureQueriesContext(connection) as ctx:
            board = group_dashboard(organization_id=org.pk, now=now)
        assert len([r for r in board.rows if r.location_id]) == n and board.total.members == n
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_the_page_runs_the_same_queries_for_2_and_6_locations(client, db):
    now = timezone.now()
    counts = []
    for n in (2, 6):
        org = _group_of(n, now)
        owner = group_manager(org, org.practices.order_by("id").first(), username=f"owner{n}")
        client.force_login(owner)
        assert client.get(reverse("group:dashboard")).status_code == 200          # the session, warm
        with CaptureQueriesContext(connection) as ctx:
            body = client.get(reverse("group:dashboard")).content.decode()
        assert body.count('data-location="') == n and f"Clinic {n - 1}" in body          # a line per location
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def _signed_in(client, user):
    client.force_login(user)
    return client


def test_only_a_group_manager_sees_the_group_dashboard(client, populated):
    world, _, _ = populated
    url = reverse("group:dashboard")
    assert client.get(url).status_code == 302 and client.get(url)["Location"].startswith(reverse("memberships:login"))
    for user in (staff_user(MANAGER, world.glow, username="glowboss"), staff_user(FRONT_DESK, world.glow)):
        assert _signed_in(client, user).get(url).status_code == 404
        assert client.get(reverse("group:export")).status_code == 404
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-Root-2026!")
    give_authenticator(root)
    assert _signed_in(client, root).get(url).status_code == 404           # no group of their own
    other = group_manager(world.other_org, world.other, username="elsewhere-owner")
    page = _signed_in(client, other).get(url)
    assert page.status_code == 200 and "Downtown" not in page.content.decode()
    page = _signed_in(client, group_manager(world.organization, world.glow)).get(url)
    body = page.content.decode()
    assert page.status_code == 200
    for name in ("Downtown", "Uptown", "Harbor", "Glow Aesthetics — no home location", 'data-testid="group-total"',
                 "MRR by location", "Active members by tier", "Breakage by month"):
        assert name in body
    assert 'data-testid="group-members">7<' in body


def test_the_csv_has_a_line_per_location_and_the_total(client, populated):
    world, _, now = populated
    owner = group_manager(world.organization, world.glow)
    response = _signed_in(client, owner).get(reverse("group:export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    header, body = lines[0], lines[1:]
    assert header[:4] == ["Location", "Practice", "Active members", "MRR"]
    board = group_dashboard(organization_id=world.organization.pk, now=now)
    assert [line[0] for line in body] == [row.name for row in board.rows] + ["Total"]
    total = body[-1]
    assert total[2] == "7" and total[3] == f"{board.total.mrr_cents / 100:.2f}"
    from memberships.models import AuditLog

    assert AuditLog.objects.filter(user=owner, action="group_dashboard_exported").count() == 1
