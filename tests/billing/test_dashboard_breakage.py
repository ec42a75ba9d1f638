"""The dashboard's breakage per month (billing.metrics.breakage_by_month): expired credit in each of
the last 12 months in the practice's time zone, each service's units and the value, summing to the
"Breakage, 12 months" figure; one query whatever the number of members."""

import re
from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from billing import metrics
from billing.metrics import practice_zone
from memberships import services
from memberships.models import EntryKind, LedgerEntry, RolloverRule
from tests.factories import PracticeFactory, TierBenefitFactory, TierFactory, active_membership, glow_tier

UTC = dt_timezone.utc
DAY = timedelta(days=1)
# Wednesday 18 November 2026, 20:00 UTC (12:00 in Los Angeles, Thursday 05:00 in Tokyo).
NOW = datetime(2026, 11, 18, 20, 0, tzinfo=UTC)


@pytest.fixture
def lapsing(glow, practice):
    """A tier whose HydraFacial and $50 of product credit both expire unused at each boundary."""
    _, facial, credit = glow
    tier = TierFactory(practice=practice, code="lapse", name="Lapse", price_cents=14900)
    TierBenefitFactory(tier=tier, service=facial, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    TierBenefitFactory(tier=tier, service=credit, quantity_per_cycle=5000, rollover=RolloverRule.NONE)
    return tier, facial, credit


def expire_at(tier, moment, *, member=None):
    """A member who joined a month before `moment` and renews at `moment`: the first cycle's unused
    benefits expire then. Returns the membership."""
    membership = active_membership(tier=tier, member=member, now=moment - 30 * DAY)
    services.refill_entitlements(membership=membership, cycle_key=f"renew:{membership.pk}:{moment:%Y%m%d%H%M}",
                                 actor=services.Actor.processor(), now=moment)
    return membership


def reference_total(practice, since, until):
    """The breakage figure as first defined: every expiry not reversed, entry by entry, × unit value."""
    rows = LedgerEntry.objects.filter(kind=EntryKind.EXPIRE, reversed_by__isnull=True, created_at__gte=since,
                                      created_at__lte=until, membership__member__practice=practice)
    return sum(-e.quantity * e.service.unit_value_cents for e in rows.select_related("service"))


def cells(html, key):
    match = re.search(rf'<tr data-breakage-month="{key}">(.*?)</tr>', html, re.S)
    assert match, f"no breakage row {key}"
    return [" ".join(strip_tags(c).split()) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match.group(1), re.S)]


def test_month_rows_sum_to_the_twelve_month_figure(lapsing, practice, manager):
    tier, facial, credit = lapsing
    la = ZoneInfo("America/Los_Angeles")
    expire_at(tier, datetime(2026, 11, 3, 10, 0, tzinfo=la))            # this month: 1 facial + $50
    expire_at(tier, datetime(2026, 11, 10, 10, 0, tzinfo=la))           # this month again
    expire_at(tier, datetime(2026, 9, 15, 10, 0, tzinfo=la))            # September
    reversed_ = expire_at(tier, datetime(2026, 6, 2, 10, 0, tzinfo=la))  # June, then corrected by a manager
    for entry in LedgerEntry.objects.filter(membership=reversed_, kind=EntryKind.EXPIRE):
        services.reverse_entry(entry=entry, actor=services.Actor.staff(manager), reason="Expired in error",
                               idempotency_key=f"undo:{entry.pk}", now=datetime(2026, 6, 3, 10, 0, tzinfo=la))
    expire_at(tier, datetime(2025, 10, 20, 10, 0, tzinfo=la))           # 13 months ago: outside the window
    other = PracticeFactory(slug="elsewhere", name="Elsewhere")
    expire_at(glow_tier(other)[0], datetime(2026, 11, 5, 10, 0, tzinfo=la))   # another practice's

    breakage = metrics.breakage_by_month(practice_id=practice.pk, now=NOW, zone=la)
    by_month = dict(zip((m.isoformat() for m in breakage.months), breakage.cents))
    assert len(breakage.months) == 12 and breakage.months[0].isoformat() == "2025-12-01"
    assert by_month["2026-11-01"] == 2 * (25000 + 5000)
    assert by_month["2026-09-01"] == 25000 + 5000
    assert by_month["2026-06-01"] == 0                               # the reversed expiry is no breakage
    assert sum(breakage.cents) == breakage.total_cents == 3 * 30000
    since = datetime(2025, 12, 1, tzinfo=la)
    assert breakage.total_cents == reference_total(practice, since, NOW)
    assert reference_total(practice, since - 60 * DAY, NOW) > breakage.total_cents   # the older expiry exists
    names = [s.name for s in breakage.services]
    assert names == ["HydraFacial", "Product credit"]
    facial_units, credit_cents = (dict(zip(breakage.months, s.quantities)) for s in breakage.services)
    assert sum(facial_units.values()) == 3 and sum(credit_cents.values()) == 3 * 5000
    for i, month_cents in enumerate(breakage.cents):       # each row: its units × the unit value
        assert month_cents == sum(s.quantities[i] * s.unit_value_cents for s in breakage.services)


def test_the_dashboard_shows_each_month_its_units_and_the_total(client, lapsing, practice, manager, now_at):
    tier, _, _ = lapsing
    zone = practice_zone(practice)
    this_month = now_at.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - DAY).replace(day=1)
    early = this_month + timedelta(hours=1)
    expire_at(tier, early if early < now_at else now_at - timedelta(seconds=1))
    expire_at(tier, last_month + timedelta(hours=10))
    expire_at(tier, last_month + timedelta(days=5))
    client.force_login(manager)
    html = client.get(reverse("manager:dashboard")).content.decode()
    assert cells(html, f"{this_month:%Y-%m}") == [f"{this_month:%b %Y}", "1", "$50.00", "$300.00"]
    assert cells(html, f"{last_month:%Y-%m}") == [f"{last_month:%b %Y}", "2", "$100.00", "$600.00"]
    assert cells(html, "total") == ["12 months", "", "", "$900.00"]
    assert html.count('<tr data-breakage-month="') == 13
    kpi = re.search(r'Breakage, 12 months</div><div class="value">([^<]+)<', html).group(1)
    assert kpi == "$900.00"                                  # the figure the rows sum to
    assert f"Months in the practice's time zone ({zone})" in " ".join(strip_tags(html).split())


def test_months_are_the_practice_time_zone_months(lapsing, practice):
    practice.timezone = "Asia/Tokyo"
    practice.save(update_fields=["timezone"])
    tier, _, _ = lapsing
    # 1 November 00:30 in Tokyo is still 31 October in Los Angeles (the site's zone) and in UTC.
    expire_at(tier, datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")))
    data = metrics.dashboard(practice_id=practice.pk, now=NOW)
    by_month = dict(zip((m.isoformat() for m in data.breakage.months), data.breakage.cents))
    assert by_month["2026-11-01"] == 30000 and by_month["2026-10-01"] == 0
    assert data.breakage.zone_name == "Asia/Tokyo"
    in_la = metrics.breakage_by_month(practice_id=practice.pk, now=NOW, zone=ZoneInfo("America/Los_Angeles"))
    assert dict(zip((m.isoformat() for m in in_la.months), in_la.cents))["2026-10-01"] == 30000


@pytest.fixture
def now_at():
    from django.utils import timezone

    return timezone.now()


def test_dashboard_queries_do_not_grow_with_the_members(client, lapsing, practice, manager,
                                                        django_assert_max_num_queries):
    """10 members with expired credit, then 200: the same number of queries for the page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    tier, _, _ = lapsing
    moment = timezone.now() - 2 * DAY
    client.force_login(manager)
    for _ in range(10):
        expire_at(tier, moment)
    client.get(reverse("manager:dashboard"))                  # warms the caches (content types, session)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("manager:dashboard"))
    for _ in range(190):
        expire_at(tier, moment)
    with django_assert_max_num_queries(len(few)):
        html = client.get(reverse("manager:dashboard")).content.decode()
    assert f"{200 * 30000 / 100:,.2f}" in html                 # all 200 members' expired credit counted
