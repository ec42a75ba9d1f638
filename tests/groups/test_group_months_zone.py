"""The group's failed-and-recovered chart is in the group's time zone, as its other charts are, while
each location's row counts its practice's own months: Glow (Los Angeles) and Bloom (Tokyo), Bloom
first by name, so the group's months are Tokyo's. A Glow charge failing at 20:00 on November 30 in
Los Angeles is December's on the group's chart (13:00 on December 1 in Tokyo), November's on
Glow's row and dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from billing import metrics
from billing.group.figures import FIGURES, group_dashboard
from tests.billing.test_payback import fail, pay
from tests.factories import MemberFactory, active_membership, glow_tier

from .group_world import build_group
from .test_group_dashboard import _practice_figures, populated  # noqa: F401 (fixture)

TOKYO, LOS_ANGELES = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Los_Angeles")
GLOW_FAILS = datetime(2026, 11, 30, 20, 0, tzinfo=LOS_ANGELES)


@pytest.mark.parametrize("now", [
    datetime(2026, 12, 20, 12, 0, tzinfo=TOKYO),          # both zones in December
    datetime(2026, 12, 1, 14, 0, tzinfo=TOKYO),           # December in Tokyo, still November 30 in Los Angeles
], ids=["mid-december", "between-the-zones-months"])
def test_the_groups_money_chart_is_in_the_groups_zone(db, now):
    world = build_group()
    world.bloom.timezone = "Asia/Tokyo"
    world.bloom.save(update_fields=["timezone"])
    glow_t, _, _ = glow_tier(world.glow)
    bloom_t, _, _ = glow_tier(world.bloom)
    ames = active_membership(tier=glow_t, member=MemberFactory(practice=world.glow, home_location=world.downtown),
                             now=now - timedelta(days=90), cycle_key="c1-ames")
    egan = active_membership(tier=bloom_t, member=MemberFactory(practice=world.bloom, home_location=world.harbor),
                             now=now - timedelta(days=90), cycle_key="c1-egan")
    fail(ames, "in_ames", GLOW_FAILS)
    pay(ames, "in_ames", GLOW_FAILS + timedelta(minutes=30))
    fail(egan, "in_egan", datetime(2026, 11, 10, 9, 0, tzinfo=TOKYO))        # open

    board = group_dashboard(organization_id=world.organization.pk, now=now)
    assert board.zone == TOKYO
    with timezone.override(TOKYO):
        expected = metrics.failed_vs_recovered(practice_id=[world.glow.pk, world.bloom.pk], now=now)
    assert board.charts.money == expected
    months = [m.isoformat() for m in board.charts.money.months]
    assert months[-1] == "2026-12-01"
    december, november = months.index("2026-12-01"), months.index("2026-11-01")
    assert (board.charts.money.failed_cents[december], board.charts.money.failed_cents[november]) == (19900, 19900)
    assert board.charts.money.recovered_cents[december] == 19900
    # Glow's row still counts Glow's months (the failure is November's in Los Angeles): what its dashboard says
    glow = metrics.dashboard(practice_id=world.glow.pk, now=now)
    downtown = next(r for r in board.rows if r.location_id == world.downtown.pk)
    assert downtown.recovered_cents == sum(glow.money.recovered_cents) == 19900


@pytest.mark.parametrize("at", [
    datetime(2026, 12, 1, 5, 0, tzinfo=TOKYO),                  # December in Tokyo, November 30 in Los Angeles
    datetime(2026, 11, 30, 23, 30, tzinfo=LOS_ANGELES),         # December 1 afternoon in Tokyo
], ids=["tokyo-ahead", "los-angeles-last-evening"])
def test_the_rows_add_up_to_the_practice_dashboards_when_their_zones_are_in_different_months(db, request, at):
    with time_machine.travel(at, tick=False):
        world, _, now = request.getfixturevalue("populated")
        board = group_dashboard(organization_id=world.organization.pk, now=now)
        glow, bloom = _practice_figures(world.glow, now), _practice_figures(world.bloom, now)
        assert {name: getattr(board.total, name) for name in FIGURES} == {
            name: glow[name] + bloom[name] for name in FIGURES}
        with timezone.override(board.zone):
            assert board.charts.money == metrics.failed_vs_recovered(
                practice_id=[world.glow.pk, world.bloom.pk], now=now)
