"""Who may reverse a redemption (issue 19): staff their own, the same business day in the practice's
time zone, with a reason and without marking it disputed; anything else is a manager's. The rule is
the service's, so the chart, the admin and any other caller obey it; a refusal changes nothing."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from memberships import services
from memberships.errors import NotAllowed
from memberships.models import AuditLog, EntitlementBalance, EntryKind, LedgerEntry
from tests.factories import active_membership
from tests.support.two_factor import give_authenticator

LA = ZoneInfo("America/Los_Angeles")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of March 2026 on the practice's clock (Pacific daylight time: UTC-7)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=LA)


@pytest.fixture
def facial_membership(glow):
    tier, facial, _ = glow
    assert tier.practice.timezone == "America/Los_Angeles"
    return active_membership(tier=tier, now=local(1, 9)), facial


def redeem(membership, facial, user, at: datetime) -> LedgerEntry:
    return services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.staff(user),
                                       idempotency_key=f"r:{user.pk}:{at.isoformat()}", now=at)


def reverse_as(user, entry, at: datetime, *, dispute: bool = False) -> LedgerEntry:
    return services.reverse_entry(entry=entry, actor=services.Actor.staff(user, ip_address="10.0.0.7"),
                                  reason="Wrong service picked", idempotency_key=f"rev:{entry.pk}:{user.pk}",
                                  now=at, dispute=dispute)


def balance(membership, service) -> int:
    return EntitlementBalance.objects.get(membership=membership, service=service).balance


def assert_refused(user, entry, at, *, dispute=False, says: str):
    membership = entry.membership
    before = balance(membership, entry.service)
    with pytest.raises(NotAllowed) as refused:
        reverse_as(user, entry, at, dispute=dispute)
    assert says in refused.value.message
    assert balance(membership, entry.service) == before
    assert not LedgerEntry.objects.filter(kind=EntryKind.REVERSE).exists()
    assert not AuditLog.objects.filter(action="reverse").exists()


def test_front_desk_reverses_their_own_redemption_the_same_day(facial_membership, front_desk):
    membership, facial = facial_membership
    entry = redeem(membership, facial, front_desk, local(10, 23, 50))
    assert balance(membership, facial) == 0
    reversal = reverse_as(front_desk, entry, local(10, 23, 58))
    assert reversal.reverses == entry and balance(membership, facial) == 1
    row = AuditLog.objects.get(action="reverse")
    assert (row.user, row.member_id, row.ip_address, row.object_id) == (
        front_desk, membership.member_id, "10.0.0.7", str(reversal.pk))


def test_the_business_day_is_the_practices_not_utcs(facial_membership, clinician):
    """16:30 and 17:30 Pacific are two UTC days (23:30 and 00:30 UTC) but one business day."""
    membership, facial = facial_membership
    entry = redeem(membership, facial, clinician, local(10, 16, 30))
    reverse_as(clinician, entry, local(10, 17, 30))
    assert balance(membership, facial) == 1


def test_front_desk_cannot_reverse_their_own_redemption_after_midnight(facial_membership, front_desk):
    membership, facial = facial_membership
    entry = redeem(membership, facial, front_desk, local(10, 23, 50))
    assert_refused(front_desk, entry, local(11, 0, 10), says="only on the day it was made")


def test_front_desk_cannot_reverse_someone_elses_redemption(facial_membership, front_desk, clinician):
    membership, facial = facial_membership
    entry = redeem(membership, facial, clinician, local(10, 11))
    assert_refused(front_desk, entry, local(10, 11, 5), says="only a redemption you made yourself")


def test_front_desk_cannot_reverse_the_records_redemption(facial_membership, front_desk):
    membership, facial = facial_membership
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.record(),
                                        idempotency_key="appt-1", now=local(10, 12))
    assert_refused(front_desk, entry, local(10, 12, 5), says="only a redemption you made yourself")


def test_front_desk_cannot_mark_a_redemption_disputed(facial_membership, front_desk):
    membership, facial = facial_membership
    entry = redeem(membership, facial, front_desk, local(10, 11))
    assert_refused(front_desk, entry, local(10, 11, 5), dispute=True, says="Only a manager may mark")


def test_a_manager_may_reverse_anyones_of_any_day_and_mark_it_disputed(facial_membership, front_desk, manager):
    membership, facial = facial_membership
    entry = redeem(membership, facial, front_desk, local(10, 23, 50))
    reversal = reverse_as(manager, entry, local(14, 9), dispute=True)
    assert reversal.dispute is True and balance(membership, facial) == 1
    assert AuditLog.objects.get(action="reverse").user == manager


def test_the_chart_shows_the_refusal_as_a_form_error(client, facial_membership, front_desk, clinician):
    membership, facial = facial_membership
    entry = redeem(membership, facial, clinician, local(10, 11))
    client.force_login(front_desk)
    url = reverse("memberships:reverse", args=[membership.member_id, entry.pk])
    response = client.post(url, {"token": "a" * 32, "reason": "Not hers"})
    assert response.status_code == 400
    assert "ask a manager" in response.content.decode()
    assert balance(membership, facial) == 0
    assert not LedgerEntry.objects.filter(kind=EntryKind.REVERSE).exists()


def test_the_admin_action_obeys_the_same_rule(client, facial_membership, front_desk, clinician):
    """Someone with the admin open but not a manager (a front desk allowed to view entries) cannot
    reverse another's redemption there either."""
    membership, facial = facial_membership
    entry = redeem(membership, facial, clinician, local(10, 11))
    front_desk.is_staff = True
    front_desk.save(update_fields=["is_staff"])
    front_desk.user_permissions.add(Permission.objects.get(codename="view_ledgerentry"))
    give_authenticator(front_desk)  # the admin asks everyone for a second factor
    client.force_login(front_desk)
    response = client.post("/admin/memberships/ledgerentry/", {
        "action": "reverse_selected", "_selected_action": [entry.pk], "apply": "1", "reason": "Not hers"},
        follow=True)
    assert response.status_code == 200
    assert "only a redemption you made yourself" in response.content.decode()
    assert balance(membership, facial) == 0
    assert not LedgerEntry.objects.filter(kind=EntryKind.REVERSE).exists()


def test_the_admin_action_lets_a_manager_reverse_an_old_disputed_one(client, facial_membership, front_desk, manager):
    membership, facial = facial_membership
    entry = redeem(membership, facial, front_desk, local(2, 11))
    client.force_login(manager)
    client.post("/admin/memberships/ledgerentry/", {
        "action": "reverse_selected", "_selected_action": [entry.pk], "apply": "1", "reason": "Disputed",
        "dispute": "on"})
    assert LedgerEntry.objects.get(kind=EntryKind.REVERSE).dispute is True
    assert balance(membership, facial) == 1
    assert AuditLog.objects.filter(action="admin_reverse", user=manager).count() == 1
