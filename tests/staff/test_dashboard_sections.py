"""The manager dashboard's reconciliation and payback sections: the figures planted data must show,
the empty state, the practice's weeks, a bounded number of queries, manager only."""

import re
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from billing.metrics import practice_zone
from billing.sheets.batches import create_import_batch, run_import_batch
from billing.reconciliation.runs import resolve_discrepancy, run_reconciliation
from billing.models import Discrepancy, ImportStatus
from memberships import services
from memberships.models import Membership
from tests.factories import active_membership

from .test_manager_pages import fail, pay

HOUR = timedelta(hours=1)
SHEET = ("Member #,First name,Last name,Plan,Start date,Price,HydraFacial balance,Product credit,Status\n"
         "S1,Ana,Silva,Glow,2024-03-05,$179.00,1,$50.00,active\n"        # the ledger's Glow costs $199
         "S2,Ben,Okafor,Glow,2024-03-05,$199.00,1,$50.00,active\n")


def monday(practice, weeks_back=0):
    """Monday 00:00 of the current week (or `weeks_back` before) in the practice's time zone."""
    zone = practice_zone(practice)
    today = timezone.now().astimezone(zone).date()
    return datetime.combine(today - timedelta(days=today.weekday(), weeks=weeks_back), time(), zone)


def row(html, week_start):
    """The payback table's row for a week: its cells' text."""
    match = re.search(rf'<tr data-week="{week_start.date().isoformat()}">(.*?)</tr>', html, re.S)
    assert match, f"no payback row for the week of {week_start.date()}"
    return [" ".join(strip_tags(cell).split()) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match.group(1), re.S)]


COLUMNS = ["week", "failed", "addressed", "recovered", "hours_to_address", "found", "resolved", "hours_to_resolve",
           "disputes", "tier_billing_errors"]


def figures(html, week_start):
    return dict(zip(COLUMNS, row(html, week_start)))


def dashboard(client, manager):
    client.force_login(manager)
    response = client.get(reverse("manager:dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def import_sheet(practice, content, now):
    batch = create_import_batch(practice=practice, file_name="members.csv", content=content.encode(), dry_run=False,
                                now=now)
    assert run_import_batch(batch_id=batch.pk, now=now).status == ImportStatus.IMPORTED


def test_three_failed_payments_two_recovered_show_in_their_week(client, manager, glow, practice):
    tier = glow[0]
    week = monday(practice, weeks_back=1)
    a, b, c = (active_membership(tier=tier, now=week - timedelta(days=40)) for _ in range(3))
    fail(a, "in_a", 19900, now=week + 10 * HOUR)
    fail(b, "in_b", 19900, now=week + 11 * HOUR)
    fail(c, "in_c", 19900, now=week + 12 * HOUR)
    pay(a, "in_a", 19900, now=week + 22 * HOUR)        # 12 hours
    pay(b, "in_b", 19900, now=week + 41 * HOUR)        # 30 hours
    html = dashboard(client, manager)
    last = figures(html, week)
    assert (last["failed"], last["addressed"], last["recovered"], last["hours_to_address"]) == ("3", "2", "2", "21.0")
    assert figures(html, monday(practice))["failed"] == "0"
    assert "Payback, week by week" in html and html.count('<tr data-week="') == 8


def test_price_mismatch_and_dispute_count_and_resolution_time_shows(client, manager, glow, practice):
    tier, facial, _ = glow
    week = monday(practice, weeks_back=2)
    import_sheet(practice, SHEET, now=week - timedelta(days=3))
    run_reconciliation(practice=practice, now=week + 3 * HOUR, trigger="test")
    mismatch = Discrepancy.objects.get(practice=practice)
    assert mismatch.kind == "price_mismatch"
    resolve_discrepancy(discrepancy=mismatch, actor=services.Actor.staff(manager), note="Promo rate ended", now=week + 9 * HOUR)
    membership = active_membership(tier=tier, now=week - timedelta(days=10))
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                        idempotency_key="r1", now=week + 30 * HOUR)
    services.reverse_entry(entry=entry, actor=services.Actor.staff(manager), reason="Member disputes it",
                           idempotency_key="rv1", now=week + 31 * HOUR, dispute=True)
    html = dashboard(client, manager)
    shown = figures(html, week)
    assert (shown["found"], shown["resolved"], shown["hours_to_resolve"]) == ("1", "1", "6.0")
    assert (shown["disputes"], shown["tier_billing_errors"]) == ("1", "1")
    assert figures(html, monday(practice, weeks_back=1))["disputes"] == "0"


def test_weeks_are_the_practice_time_zone_weeks(client, manager, glow, practice):
    practice.timezone = "Asia/Tokyo"
    practice.save(update_fields=["timezone"])
    this_week = monday(practice)
    assert str(this_week.tzinfo) == "Asia/Tokyo"
    membership = active_membership(tier=glow[0], now=this_week - timedelta(days=40))
    # Monday 00:30 in Tokyo is still Sunday in Los Angeles (the site's zone) and in UTC.
    fail(membership, "in_monday", 19900, now=this_week + timedelta(minutes=30))
    html = dashboard(client, manager)
    assert figures(html, this_week)["week"].startswith(f"{this_week:%b} {this_week.day} (this week)")
    assert figures(html, this_week)["failed"] == "1"
    assert figures(html, monday(practice, weeks_back=1))["failed"] == "0"
    assert "Weeks start on Monday in the practice's time zone (Asia/Tokyo)" in html


def test_reconciliation_empty_state(client, manager, glow):
    html = dashboard(client, manager)
    text = " ".join(strip_tags(html).split())
    assert ("No reconciliation has run yet — run it from the reconciliation page or manage.py reconcile"
            in text)
    assert f'href="{reverse("mirror:reconciliation")}"' in html
    assert "Open discrepancies at each reconciliation run" not in html
    assert html.count("<svg") == 6


def test_reconciliation_trend_and_latest_run(client, manager, glow, practice):
    now = timezone.now()
    import_sheet(practice, SHEET, now=now - timedelta(days=5))
    s2 = Membership.objects.get(member__member_number="S2")          # a facial the spreadsheet does not know of
    services.redeem_entitlement(membership=s2, service=glow[1], actor=services.Actor.system(),
                                idempotency_key="walk-in", now=now - timedelta(days=4))
    run_reconciliation(practice=practice, now=now - timedelta(days=2), trigger="test")
    assert Discrepancy.objects.count() == 2                  # S1's price, S2's HydraFacial balance
    resolve_discrepancy(discrepancy=Discrepancy.objects.get(kind="balance_mismatch"), actor=services.Actor.staff(manager),
                        note="Counted at the desk", now=now - timedelta(days=1))
    run_reconciliation(practice=practice, now=now - HOUR, trigger="test")
    html = dashboard(client, manager)
    assert html.count("<svg") == 7
    chart = re.search(r'<svg[^>]*aria-label="Open discrepancies at each reconciliation run, by kind".*?</svg>', html,
                      re.S).group(0)
    zone = practice_zone(practice)
    first, second = (f"{d:%b} {d.day}" for d in (timezone.localtime(now - timedelta(days=2), zone),
                                                  timezone.localtime(now - HOUR, zone)))
    assert f"<title>Balance mismatch, {first}: 1</title>" in chart
    assert f"<title>Balance mismatch, {second}: 0</title>" in chart   # resolved in between
    assert f"<title>Price mismatch, {first}: 1</title>" in chart and f"<title>Price mismatch, {second}: 1</title>" in chart
    text = " ".join(strip_tags(html).split())
    assert "1 open of 2 found, 1 resolved." in text
    assert "Not compared — processor: could not be read" in text
    assert "Open discrepancies at each of the last 2 runs." in text


def test_query_count_does_not_grow_with_the_data(client, manager, glow, practice):
    tier, facial, _ = glow
    week = monday(practice, weeks_back=1)

    def plant(n):
        for i in range(n):
            m = active_membership(tier=tier, now=week - timedelta(days=40))
            fail(m, f"in_{n}_{i}", 19900, now=week + HOUR)
            pay(m, f"in_{n}_{i}", 19900, now=week + 5 * HOUR)
            entry = services.redeem_entitlement(membership=m, service=facial, actor=services.Actor.system(),
                                                idempotency_key=f"r{n}{i}", now=week + 6 * HOUR)
            services.reverse_entry(entry=entry, actor=services.Actor.system(), reason="disputed",
                                   idempotency_key=f"rv{n}{i}", now=week + 7 * HOUR, dispute=True)
        run_reconciliation(practice=practice, now=week + (8 + n) * HOUR, trigger="test")

    def count():
        with CaptureQueriesContext(connection) as queries:
            dashboard(client, manager)
        return len(queries)

    import_sheet(practice, SHEET, now=week - timedelta(days=3))
    plant(1)
    count()                                    # the first request warms the caches (content types, session)
    few = count()
    plant(6)
    for d in Discrepancy.objects.all():
        resolve_discrepancy(discrepancy=d, actor=services.Actor.staff(manager), note="checked", now=week + 20 * HOUR)
    run_reconciliation(practice=practice, now=week + 21 * HOUR, trigger="test")
    assert Discrepancy.objects.count() >= 2
    assert count() == few


@pytest.mark.parametrize("role", ["front_desk", "clinician"])
def test_only_managers_see_it(client, role, request, glow):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("manager:dashboard")).status_code == 403
