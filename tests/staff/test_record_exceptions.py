"""The record exceptions page: each role, each action, exactly once, audited, scoped to the practice."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.models import RecordException, RecordExceptionStatus
from integrations.records.base import TreatmentCompleted
from integrations.records.inbound import apply_record_event, spend_key
from memberships import services
from memberships.models import AuditLog, AutomationStage, EntitlementBalance, EntryKind, LedgerEntry
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import PracticeFactory, active_membership, glow_tier, staff_user

LIST = reverse("records_staff:list")
WHEN = datetime(2026, 11, 20, 15, 30, tzinfo=dt_timezone.utc)


@pytest.fixture
def held(practice, glow):
    """Ana's HydraFacial reported by the record while the practice is in `alerts`: held for review."""
    tier, facial, _ = glow
    practice.record_adapter = "webhook"
    practice.automation_stage = AutomationStage.ALERTS
    practice.save()
    membership = active_membership(tier=tier)
    member = membership.member
    member.first_name, member.last_name, member.record_patient_id = "Ana", "Garcia", "P-1"
    member.save()
    outcome = apply_record_event(practice=practice, now=timezone.now(), event=TreatmentCompleted(
        appointment_id="A-1", patient_id="P-1", service_code="hydrafacial", occurred_at=WHEN))
    assert outcome == "review"
    return RecordException.objects.get(appointment_ref="A-1"), membership, facial


def report(practice, appointment, **fields):
    fields = {"patient_id": "P-1", "service_code": "hydrafacial", **fields}
    return apply_record_event(practice=practice, now=timezone.now(),
                              event=TreatmentCompleted(appointment_id=appointment, **fields))


def available(membership, service):
    return EntitlementBalance.objects.get(membership=membership, service=service).available


def spends(practice, appointment="A-1"):
    return LedgerEntry.objects.filter(kind=EntryKind.REDEEM, idempotency_key=spend_key(practice, appointment)).count()


def url(name, row):
    return reverse(f"records_staff:{name}", args=[row.pk])


@pytest.mark.parametrize("role, status", [(FRONT_DESK, 200), (CLINICIAN, 403), (MANAGER, 200)])
def test_each_role_against_the_page(client, practice, held, role, status):
    client.force_login(staff_user(role, practice, username=f"u-{role}"))
    response = client.get(LIST)
    assert response.status_code == status
    if status == 200:
        page = response.content.decode()
        assert "Ana Garcia" in page and "Treatment completed: HydraFacial" in page
        assert "held for review" in page and "Nov 20, 2026" in page and "appointment A-1" in page
    else:
        assert b"have access to this page" in response.content


def test_anonymous_goes_to_login_and_changes_nothing(client, held):
    row, membership, facial = held
    assert client.get(LIST).status_code == 302
    for name in ("resolve", "apply", "dismiss"):
        response = client.post(url(name, row), {"note": "x", "confirm": "1"})
        assert response.status_code == 302 and "/login/" in response["Location"]
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.OPEN and available(membership, facial) == 1


def test_clinician_may_not_act(client, clinician, held):
    row, membership, facial = held
    client.force_login(clinician)
    for name in ("resolve", "apply", "dismiss"):
        assert client.post(url(name, row), {"note": "x", "confirm": "1"}).status_code == 403
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.OPEN and AuditLog.objects.filter(action__startswith="record").count() == 0


def test_another_practices_staff_neither_see_nor_touch_them(client, held):
    row, membership, facial = held
    other = PracticeFactory(slug="elsewhere")
    glow_tier(other)
    client.force_login(staff_user(MANAGER, other, username="other-manager"))
    page = client.get(LIST).content.decode()
    assert "Ana Garcia" not in page and "No open record exceptions" in page
    for name in ("resolve", "apply", "dismiss"):
        assert client.post(url(name, row), {"note": "mine now", "confirm": "1"}).status_code == 404
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.OPEN and available(membership, facial) == 1


def test_actions_take_post_only(client, front_desk, held):
    row, _, _ = held
    client.force_login(front_desk)
    assert client.get(url("resolve", row)).status_code == 405


def test_resolve_needs_a_note_and_happens_once(client, front_desk, held):
    row, membership, facial = held
    client.force_login(front_desk)
    empty = client.post(url("resolve", row), {"note": "  "}, follow=True)
    assert "Say how it was resolved" in empty.content.decode()
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.OPEN

    first = client.post(url("resolve", row), {"note": "Not a member visit"}, follow=True)
    assert "Resolved." in first.content.decode()
    second = client.post(url("resolve", row), {"note": "Not a member visit"}, follow=True)
    assert "already closed" in second.content.decode()
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.RESOLVED and row.resolution_note == "Not a member visit"
    assert row.resolved_by == front_desk
    assert AuditLog.objects.filter(action="record_exception_resolve", member=row.member).count() == 1
    assert available(membership, facial) == 1  # resolving spends nothing
    assert "No open record exceptions" in client.get(LIST).content.decode()


def test_front_desk_applies_a_held_treatment_once_the_practice_redeems(client, front_desk, practice, held):
    row, membership, facial = held
    practice.automation_stage = AutomationStage.REDEMPTIONS
    practice.save(update_fields=["automation_stage"])
    client.force_login(front_desk)
    assert "Apply now" in client.get(LIST).content.decode()
    first = client.post(url("apply", row), follow=True)
    assert "Applied" in first.content.decode()
    second = client.post(url("apply", row), follow=True)  # a double submit
    assert "already closed" in second.content.decode()
    assert available(membership, facial) == 0 and spends(practice) == 1
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.APPLIED and "redeemed 1 HydraFacial" in row.resolution_note
    assert AuditLog.objects.filter(action="record_exception_apply").count() == 1
    # the record reporting the same treatment again spends nothing more
    assert report(practice, "A-1") == "already_spent"
    assert available(membership, facial) == 0 and spends(practice) == 1


def test_before_redemptions_only_a_confirming_manager_applies(client, front_desk, manager, practice, held):
    row, membership, facial = held
    client.force_login(front_desk)
    page = client.get(LIST).content.decode()
    assert "Apply now" not in page and "A manager may apply it" in page
    refused = client.post(url("apply", row), {"confirm": "1"}, follow=True)
    assert "a manager may apply it after confirming" in refused.content.decode()
    assert available(membership, facial) == 1

    client.force_login(manager)
    assert 'name="confirm"' in client.get(LIST).content.decode()
    unconfirmed = client.post(url("apply", row), follow=True)
    assert "a manager may apply it after confirming" in unconfirmed.content.decode()
    assert available(membership, facial) == 1
    client.post(url("apply", row), {"confirm": "1"})
    client.post(url("apply", row), {"confirm": "1"})
    assert available(membership, facial) == 0 and spends(practice) == 1
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.APPLIED and row.resolved_by == manager
    assert AuditLog.objects.filter(action="record_exception_apply", user=manager).count() == 1


def test_applying_without_balance_leaves_it_open_and_never_negative(client, manager, practice, held):
    row, membership, facial = held
    services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.staff(manager),
                                idempotency_key="desk-1", now=timezone.now())
    client.force_login(manager)
    response = client.post(url("apply", row), {"confirm": "1"}, follow=True)
    assert "Not enough HydraFacial" in response.content.decode()
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.OPEN
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 0
    assert AuditLog.objects.filter(action="record_exception_apply").count() == 0


def test_dismiss_spends_nothing_once(client, front_desk, held):
    row, membership, facial = held
    client.force_login(front_desk)
    assert "Dismissed" in client.post(url("dismiss", row), follow=True).content.decode()
    assert "already closed" in client.post(url("dismiss", row), follow=True).content.decode()
    row.refresh_from_db()
    assert row.status == RecordExceptionStatus.DISMISSED and available(membership, facial) == 1
    assert AuditLog.objects.filter(action="record_exception_dismiss").count() == 1


def test_only_held_treatments_are_applied_or_dismissed(client, manager, practice, held):
    row, membership, facial = held
    report(practice, "A-2", patient_id="P-unknown")
    unknown = RecordException.objects.get(appointment_ref="A-2")
    assert unknown.kind == "unknown_patient"
    client.force_login(manager)
    page = client.get(LIST).content.decode()
    assert "unknown patient" in page and "record id P-unknown" in page
    for name in ("apply", "dismiss"):
        response = client.post(url(name, unknown), {"confirm": "1"}, follow=True)
        assert "resolve this one with a note" in response.content.decode()
    unknown.refresh_from_db()
    assert unknown.status == RecordExceptionStatus.OPEN


def test_navigation_counts_the_practices_open_exceptions(client, front_desk, clinician, practice, held):
    report(practice, "A-2", patient_id="P-unknown")
    other = PracticeFactory(slug="elsewhere")
    RecordException.objects.create(practice=other, kind="unknown_patient", event_type="treatment.completed",
                                   appointment_ref="X-1", detail="elsewhere", created_at=timezone.now())
    client.force_login(front_desk)
    page = client.get(reverse("memberships:home")).content.decode()
    assert 'aria-label="2 open">2</span>' in page
    client.force_login(clinician)
    assert "Record exceptions" not in client.get(reverse("memberships:home")).content.decode()


def test_the_chart_shows_the_members_open_exceptions_within_its_query_budget(
        client, front_desk, held, django_assert_max_num_queries):
    row, membership, _ = held
    chart = reverse("memberships:chart", args=[membership.member_id])
    client.force_login(front_desk)
    client.get(chart)
    with django_assert_max_num_queries(10):
        page = client.get(chart).content.decode()
    assert 'data-testid="record-exceptions"' in page and f"{LIST}?member={membership.member_id}" in page
    assert 'aria-label="1 open">1</span>' in page  # the navigation's count, from the same query
    filtered = client.get(f"{LIST}?member={membership.member_id}").content.decode()
    assert "Showing Ana Garcia only" in filtered
    client.post(url("dismiss", row), {"member": membership.member_id})
    assert 'data-testid="record-exceptions"' not in client.get(chart).content.decode()


def test_the_page_reads_a_fixed_number_of_queries(client, front_desk, practice, held):
    client.force_login(front_desk)
    client.get(LIST)
    counts = []
    for extra in range(2):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LIST).status_code == 200
        counts.append(len(ctx.captured_queries))
        for i in range(5):
            report(practice, f"B-{extra}-{i}", patient_id=f"P-unknown-{i}")
            report(practice, f"C-{extra}-{i}")
    assert counts[0] == counts[1]
