"""The dashboard's "Staff hours saved, month by month": what members and the reconciliation did that
the front desk would have done — a member opening their own page, a discrepancy a later run closed, a
request done at once on the member page — in hours and dollars at the settings' minutes and cost;
the page's queries do not grow with the members."""

import re
from datetime import timedelta

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from billing.metrics import practice_zone
from billing.models import Discrepancy, ReconciliationRun
from billing.reconciliation.runs import resolve_discrepancy, run_reconciliation
from billing.sheets.batches import create_import_batch, run_import_batch
from memberships import services
from memberships.models import MemberRequest, MemberRequestStatus, Membership
from memberships.services.common import write_view_audit
from tests.factories import MemberFactory, active_membership
from tests.portal.me_support import sign_in
from tests.support.clock import clear_of_month_start

MINUTE = timedelta(minutes=1)
SHEET = ("Member #,First name,Last name,Plan,Start date,Price,HydraFacial balance,Product credit,Status\n"
         "S1,Ana,Silva,Glow,2024-03-05,$179.00,1,$50.00,active\n"        # the ledger's Glow costs $199
         "S2,Ben,Okafor,Glow,2024-03-05,$199.00,1,$50.00,active\n")


def this_month_for_ten_minutes(practice, time_machine):
    """Now, or (in the first minutes of a month, practice time) a quarter of an hour into it: what a
    test writes up to ten minutes back is this month's, whenever the suite runs."""
    now = clear_of_month_start(timezone.now(), zone=practice_zone(practice))
    time_machine.move_to(now, tick=True)
    return timezone.now()


def this_month_row(html, practice):
    month = timezone.now().astimezone(practice_zone(practice))
    match = re.search(rf'<tr data-staff-month="{month:%Y-%m}">(.*?)</tr>', html, re.S)
    assert match, "no row for this month"
    cells = [" ".join(strip_tags(c).split()) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match.group(1), re.S)]
    return dict(zip(["month", "lookups", "closed", "self_served", "hours", "cost"], cells))


def dashboard(client, manager):
    client.force_login(manager)
    response = client.get(reverse("manager:dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def test_member_page_views_auto_closed_discrepancies_and_self_served_requests_show(client, manager, glow, practice,
                                                                                   settings, time_machine):
    settings.STAFF_MINUTES_PER_BALANCE_LOOKUP, settings.STAFF_MINUTES_PER_RECONCILIATION_ITEM = 5, 6
    settings.STAFF_MINUTES_PER_SELF_SERVED_REQUEST, settings.STAFF_HOURLY_COST_CENTS = 9, 3000
    practice.member_requests_self_serve, practice.automation_stage = True, "tier_sync"
    practice.save(update_fields=["member_requests_self_serve", "automation_stage"])
    tier, facial, _ = glow
    now = this_month_for_ten_minutes(practice, time_machine)
    # Reconciliation: S2's HydraFacial differs after a walk-in, which is then reversed — the next run
    # no longer finds it (closed without staff); S1's price a manager resolves (staff work: not counted).
    batch = create_import_batch(practice=practice, file_name="members.csv", content=SHEET.encode(), dry_run=False,
                                now=now - 10 * MINUTE)
    run_import_batch(batch_id=batch.pk, now=now - 10 * MINUTE)
    s2 = Membership.objects.get(member__member_number="S2")
    walk_in = services.redeem_entitlement(membership=s2, service=facial, actor=services.Actor.system(),
                                          idempotency_key="walk-in", now=now - 9 * MINUTE)
    run_reconciliation(practice=practice, now=now - 8 * MINUTE, trigger="test")
    assert sorted(Discrepancy.objects.values_list("kind", flat=True)) == ["balance_mismatch", "price_mismatch"]
    resolve_discrepancy(discrepancy=Discrepancy.objects.get(kind="price_mismatch"), actor=services.Actor.staff(manager),
                        note="Promo rate ended", now=now - 7 * MINUTE)
    services.reverse_entry(entry=walk_in, actor=services.Actor.staff(manager), reason="Not done after all",
                           idempotency_key="undo-walk-in", now=now - 6 * MINUTE)
    run_reconciliation(practice=practice, now=now - 5 * MINUTE, trigger="test")
    assert Discrepancy.objects.get(kind="balance_mismatch").gone_at is not None

    # Two members open their own page: Dana twice (one look-up that day), Eli once and then pauses.
    dana = active_membership(tier=tier, member=MemberFactory(practice=practice, email="dana@example.com")).member
    eli = active_membership(tier=tier, member=MemberFactory(practice=practice, email="eli@example.com")).member
    for member, views in ((dana, 2), (eli, 1)):
        browser = Client()
        sign_in(browser, member)
        for _ in range(views):
            assert browser.get(reverse("portal:me:page")).status_code == 200
    page = browser.get(reverse("portal:me:page")).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    until = (now + timedelta(days=20)).date().isoformat()
    browser.post(reverse("portal:me:request"), {"kind": "pause", "reason": "travel", "pause_until": until,
                                                "token": token})
    assert MemberRequest.objects.get(member=eli).status == MemberRequestStatus.APPLIED

    html = dashboard(client, manager)
    row = this_month_row(html, practice)
    assert (row["lookups"], row["closed"], row["self_served"]) == ("2", "1", "1")
    minutes = 2 * 5 + 6 + 9                                       # 25 minutes at $30.00 an hour
    assert (row["hours"], row["cost"]) == ("0.4", "$12.50")
    assert row["month"].endswith("(this month)")
    text = " ".join(strip_tags(html).split())
    assert "Staff hours saved, month by month" in text
    assert "instead of calling to ask what is left, 5 min" in text and "an hour of staff time at $30.00" in text
    total = re.search(r'data-testid="staff-hours-total">([^<]+)<', html).group(1)
    assert total == f"{minutes / 60:.1f}"


def test_dashboard_queries_do_not_grow_with_the_members(client, manager, glow, practice,
                                                        django_assert_max_num_queries, time_machine):
    """10 members who opened their page, filed a request and had a discrepancy closed, then 200."""
    now = this_month_for_ten_minutes(practice, time_machine)
    run = ReconciliationRun.objects.create(practice=practice, started_at=now - 10 * MINUTE)

    def plant(n, start):
        members = [active_membership(tier=glow[0], now=now - timedelta(days=3)) for _ in range(n)]
        write_view_audit(actor=services.Actor.system(), action="member_page_view",
                         members=[m.member for m in members], now=now - MINUTE)
        MemberRequest.objects.bulk_create([
            MemberRequest(practice=practice, member=m.member, membership=m, kind="cancel", reason="price",
                          status=MemberRequestStatus.APPLIED, idempotency_key=f"q{m.pk}", created_at=now - MINUTE,
                          decided_at=now - MINUTE) for m in members])
        Discrepancy.objects.bulk_create([
            Discrepancy(practice=practice, fingerprint=f"{start + i:064d}", kind="missing", message="missing",
                        first_seen_run=run, last_seen_run=run, first_seen_at=now - 10 * MINUTE,
                        last_seen_at=now - 10 * MINUTE, gone_at=now - MINUTE) for i in range(n)])

    plant(10, 0)
    dashboard(client, manager)                                 # warms the caches (content types, session)
    with CaptureQueriesContext(connection) as few:
        dashboard(client, manager)
    plant(190, 10)
    with django_assert_max_num_queries(len(few)):
        html = dashboard(client, manager)
    row = this_month_row(html, practice)
    assert (row["lookups"], row["closed"], row["self_served"]) == ("200", "200", "200")
