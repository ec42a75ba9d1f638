"""Every month on a practice's dashboard is a month in the practice's own time zone: members and
MRR, failed and recovered, as breakage already was. A Tokyo practice's charge that fails at 05:00
on December 1 in Tokyo (still November 30 on the site's clock, Los Angeles) is December's."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from billing import metrics
from tests.billing.test_payback import fail, pay
from tests.factories import active_membership

TOKYO = ZoneInfo("Asia/Tokyo")
FIRST_OF_DECEMBER = datetime(2026, 12, 1, 5, 0, tzinfo=TOKYO)        # Nov 30, 12:00 in Los Angeles
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=TOKYO)


def _month(months, key):
    return [m.isoformat() for m in months].index(key)


def test_a_tokyo_practices_months_are_tokyo_months(glow, practice, settings):
    assert settings.TIME_ZONE == "America/Los_Angeles"
    practice.timezone = "Asia/Tokyo"
    practice.save(update_fields=["timezone"])
    tier = glow[0]
    failing = active_membership(tier=tier, now=NOW - timedelta(days=60))
    fail(failing, "in_dec", FIRST_OF_DECEMBER)
    pay(failing, "in_dec", FIRST_OF_DECEMBER + timedelta(hours=1))
    joined = active_membership(tier=tier, now=FIRST_OF_DECEMBER)        # joined on December 1, Tokyo time

    board = metrics.dashboard(practice_id=practice.pk, now=NOW)
    money, members = board.money, board.members
    december, november = _month(money.months, "2026-12-01"), _month(money.months, "2026-11-01")
    assert (money.failed_cents[december], money.failed_cents[november]) == (19900, 0)
    assert (money.recovered_cents[december], money.recovered_cents[november]) == (19900, 0)
    # at November's end in Tokyo the December joiner was not yet a member; at December's she is
    assert members.total_members[_month(members.months, "2026-11-01")] == 1
    assert members.total_members[_month(members.months, "2026-12-01")] == 2
    assert joined.pk != failing.pk
