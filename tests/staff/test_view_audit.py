"""Every page that shows member data leaves an audit row per member shown — who, when, which member,
from where — written in one INSERT (issue 19 §5); and a manager (only) sees who looked at a member."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.dunning import open_case_for_failure
from billing.models import ImportBatch, ImportStatus
from integrations.models import RecordException, RecordExceptionKind
from memberships.models import AuditLog, Member
from memberships.roles import MANAGER
from tests.factories import MemberFactory, PracticeFactory, active_membership, staff_user

FROM = "203.0.113.9"          # the address every request below comes from
AUDIT_TABLE = AuditLog._meta.db_table


def audit_inserts(queries) -> int:
    return sum(1 for q in queries if q["sql"].lstrip().upper().startswith("INSERT")
               and AUDIT_TABLE in q["sql"])


def get_audited(client, url, **params):
    """GET the page; return the response and the number of INSERTs into the audit log it made."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params, REMOTE_ADDR=FROM)
    assert response.status_code == 200, response.content.decode()[:500]
    return response, audit_inserts(ctx.captured_queries)


def rows_of(action):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def assert_rows(action, user, members):
    rows = rows_of(action)
    assert sorted(r.member_id for r in rows) == sorted(m.pk for m in members)
    assert {(r.user_id, r.ip_address) for r in rows} == {(user.pk, FROM)}


@pytest.fixture
def garcias(practice):
    """Three members the search for "garcia" lists, one it does not."""
    MemberFactory(practice=practice, first_name="Bob", last_name="Smith")
    return [MemberFactory(practice=practice, first_name=first, last_name="Garcia")
            for first in ("Ana", "Luis", "Marta")]


def test_member_search_audits_each_member_listed_in_one_insert(client, front_desk, garcias):
    client.force_login(front_desk)
    response, inserts = get_audited(client, reverse("memberships:home"), q="garcia")
    assert len(response.context["results"]) == 3
    assert inserts == 1
    assert_rows("search_members", front_desk, garcias)


def test_a_search_that_finds_nobody_writes_nothing(client, front_desk, garcias):
    client.force_login(front_desk)
    _, inserts = get_audited(client, reverse("memberships:home"), q="nobody-by-that-name")
    assert inserts == 0 and not AuditLog.objects.exists()


def test_admin_member_list_and_page_are_audited(client, manager, garcias):
    client.force_login(manager)
    _, inserts = get_audited(client, "/admin/memberships/member/")
    assert inserts == 1
    everyone = list(Member.objects.filter(practice=manager.staff_profile.practice))
    assert_rows("admin_list_member", manager, everyone)
    _, inserts = get_audited(client, f"/admin/memberships/member/{garcias[0].pk}/change/")
    assert inserts == 1
    assert_rows("admin_view_member", manager, [garcias[0]])


def test_admin_membership_list_and_page_are_audited(client, manager, glow):
    tier, *_ = glow
    memberships = [active_membership(tier=tier) for _ in range(3)]
    client.force_login(manager)
    _, inserts = get_audited(client, "/admin/memberships/membership/")
    assert inserts == 1
    assert_rows("admin_list_membership", manager, [m.member for m in memberships])
    _, inserts = get_audited(client, f"/admin/memberships/membership/{memberships[1].pk}/change/")
    assert inserts == 1
    assert_rows("admin_view_membership", manager, [memberships[1].member])


def test_dunning_queue_audits_each_member_listed(client, manager, glow):
    tier, *_ = glow
    now = timezone.now()
    memberships = [active_membership(tier=tier) for _ in range(3)]
    for i, membership in enumerate(memberships):
        open_case_for_failure(membership=membership, invoice_ref=f"in_{i}", amount_cents=19900, now=now)
    client.force_login(manager)
    response, inserts = get_audited(client, reverse("manager:dunning"))
    assert len(response.context["rows"]) == 3
    assert inserts == 1
    assert_rows("dunning_queue", manager, [m.member for m in memberships])


def test_record_exceptions_list_audits_each_member_listed(client, front_desk, practice, glow):
    tier, facial, _ = glow
    members = [active_membership(tier=tier).member for _ in range(2)]
    now = timezone.now()
    for i, member in enumerate(members + [None]):   # the last: a patient the ledger does not know
        RecordException.objects.create(practice=practice, member=member, service=facial,
                                       kind=RecordExceptionKind.REVIEW, event_type="treatment.completed",
                                       appointment_ref=f"A-{i}", patient_ref=f"P-{i}", quantity=1, created_at=now,
                                       detail="Held for review")
    client.force_login(front_desk)
    _, inserts = get_audited(client, reverse("records_staff:list"))
    assert inserts == 1
    assert_rows("record_exceptions", front_desk, members)


def test_import_detail_audits_the_ledger_members_it_lists(client, manager, practice, garcias):
    batch = ImportBatch.objects.create(
        practice=practice, file_name="members.csv", sha256="0" * 64, content=b"", dry_run=True,
        status=ImportStatus.VALIDATED, created_at=timezone.now(), report={"actions": [
            {"line": 2, "member_number": garcias[0].member_number, "action": "change", "detail": "tier"},
            {"line": 3, "member_number": garcias[1].member_number, "action": "change", "detail": "phone"},
            {"line": 4, "member_number": "M999999", "action": "create", "detail": "new member"}]})
    client.force_login(manager)
    _, inserts = get_audited(client, reverse("mirror:import_detail", args=[batch.pk]))
    assert inserts == 1
    assert_rows("import_detail", manager, garcias[:2])
    assert {r.object_id for r in rows_of("import_detail")} == {str(batch.pk)}


# --- who looked at this member --------------------------------------------------------------------

def test_a_manager_sees_who_looked_newest_first_and_paginated(client, front_desk, manager, garcias):
    ana = garcias[0]
    client.force_login(front_desk)
    client.get(reverse("memberships:chart", args=[ana.pk]), REMOTE_ADDR=FROM)
    start = timezone.now() - timedelta(days=30)
    AuditLog.objects.bulk_create([AuditLog(user=front_desk, action="view_chart", member=ana, ip_address="10.1.1.1",
                                           created_at=start + timedelta(hours=i)) for i in range(60)])
    client.force_login(manager)
    url = reverse("memberships:who_looked", args=[ana.pk])
    chart = client.get(reverse("memberships:chart", args=[ana.pk])).content.decode()
    assert url in chart
    page = client.get(url, REMOTE_ADDR=FROM)
    html = page.content.decode()
    lines = page.context["lines"]
    assert len(lines) == 50
    stamps = [row.created_at for row, _ in lines]
    assert stamps == sorted(stamps, reverse=True)
    # Newest first: the manager's own chart read, then the front desk's from FROM.
    assert (lines[0][0].user, lines[0][0].action) == (manager, "view_chart")
    assert (lines[1][0].user, lines[1][0].ip_address) == (front_desk, FROM)
    assert "Opened the chart" in html and front_desk.get_username() in html and FROM in html
    older = client.get(url, {"page": 2}).context["lines"]
    assert 0 < len(older) <= 15
    assert max(row.created_at for row, _ in older) <= min(stamps)
    # Reading the trail is itself on the trail.
    assert AuditLog.objects.filter(action="view_audit_trail", member=ana, user=manager).count() == 2


def test_front_desk_cannot_see_who_looked(client, front_desk, garcias):
    ana = garcias[0]
    client.force_login(front_desk)
    url = reverse("memberships:who_looked", args=[ana.pk])
    assert url not in client.get(reverse("memberships:chart", args=[ana.pk])).content.decode()
    assert client.get(url).status_code == 403
    assert not AuditLog.objects.filter(action="view_audit_trail").exists()


def test_another_practices_member_is_not_found(client, manager, db):
    elsewhere = PracticeFactory(slug="elsewhere")
    stranger = MemberFactory(practice=elsewhere)
    client.force_login(manager)
    assert client.get(reverse("memberships:who_looked", args=[stranger.pk])).status_code == 404
    other_manager = staff_user(MANAGER, elsewhere)
    client.force_login(other_manager)
    assert client.get(reverse("memberships:who_looked", args=[stranger.pk])).status_code == 200



@pytest.mark.parametrize("name", ["memberships:change_tier", "memberships:pause", "memberships:cancel"])
def test_a_change_form_that_names_the_member_is_audited(client, front_desk, glow, name):
    """The pause, cancel and tier-change pages show the member's name and membership (the cancel
    confirmation their balances too): opened by typing member ids, they must leave a row as well."""
    tier, *_ = glow
    membership = active_membership(tier=tier)
    client.force_login(front_desk)
    response, inserts = get_audited(client, reverse(name, args=[membership.member_id]))
    assert membership.member.full_name in response.content.decode()
    assert inserts == 1
    assert [(r.member_id, r.user_id, r.ip_address) for r in AuditLog.objects.all()] == \
        [(membership.member_id, front_desk.pk, FROM)]


def test_the_admin_dunning_cases_record_exceptions_and_credit_lots_are_audited(client, manager, practice, glow):
    """The admin's lists of dunning cases, record exceptions and a membership's credit lots name members
    as the staff pages do: each list and each page leaves its rows."""
    tier, facial, _ = glow
    memberships = [active_membership(tier=tier) for _ in range(2)]
    now = timezone.now()
    cases = [open_case_for_failure(membership=m, invoice_ref=f"in_{i}", amount_cents=19900, now=now)
             for i, m in enumerate(memberships)]
    RecordException.objects.create(practice=practice, member=memberships[0].member, service=facial,
                                   kind=RecordExceptionKind.REVIEW, event_type="treatment.completed",
                                   appointment_ref="A-1", patient_ref="P-1", quantity=1, created_at=now,
                                   detail="Held for review")
    client.force_login(manager)
    members = [m.member for m in memberships]
    for url, action, shown in [
        ("/admin/billing/dunningcase/", "admin_list_dunningcase", members),
        (f"/admin/billing/dunningcase/{cases[1].pk}/change/",
         "admin_view_dunningcase", members[1:]),
        ("/admin/integrations/recordexception/", "admin_list_recordexception", members[:1]),
        ("/admin/memberships/creditlot/", "admin_list_creditlot", members),
    ]:
        _, inserts = get_audited(client, url)
        assert inserts == 1, url
        assert_rows(action, manager, shown)
