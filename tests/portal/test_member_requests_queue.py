"""The staff queue "Member requests": front desk and managers see their practice's requests and
decide them; approving goes through the pause/cancel doors with the staff member as the actor,
exactly once; declining needs a reason the member then sees."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships.models import AuditLog, Event, EventKind, MemberRequest, MembershipStatus
from memberships.roles import FRONT_DESK
from memberships.services import Actor
from memberships.services.member_requests import (
    RequestAlreadyDecided,
    approve_member_request,
    file_member_request,
)
from tests.factories import PracticeFactory, active_membership, ana_garcia, glow_tier, staff_user
from tests.memberships.ledger_checks import hammer


def _pause_request(membership, *, days=30, key="k1"):
    now = timezone.now()
    return file_member_request(membership=membership, kind="pause", reason="travel", note="Trip",
                               pause_until=(now + timedelta(days=days)).date(),
                               actor=Actor.member(membership.member), idempotency_key=key, now=now)


@pytest.mark.django_db
def test_front_desk_sees_the_queue_and_approves_a_pause(client, glow, front_desk):
    member, membership = ana_garcia(glow[0])
    request = _pause_request(membership)
    client.force_login(front_desk)
    page = client.get(reverse("memberships:member_requests"))
    assert page.status_code == 200 and "Ana Garcia" in page.content.decode() and "Trip" in page.content.decode()
    assert AuditLog.objects.filter(user=front_desk, action="member_requests_view", member=member).exists()
    client.post(reverse("memberships:member_request_decide", args=[request.pk]), {"decision": "approve"})
    membership.refresh_from_db()
    request.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED and membership.paused_until == request.pause_until
    assert (request.status, request.decided_by) == ("approved", front_desk)
    assert AuditLog.objects.filter(user=front_desk, action="pause", member=member).exists()


@pytest.mark.django_db
def test_a_clinician_may_not_see_the_queue(client, glow, clinician):
    client.force_login(clinician)
    assert client.get(reverse("memberships:member_requests")).status_code == 403


@pytest.mark.django_db
def test_declining_needs_a_reason_and_the_member_is_told(client, glow, front_desk):
    member, membership = ana_garcia(glow[0])
    request = _pause_request(membership)
    client.force_login(front_desk)
    url = reverse("memberships:member_request_decide", args=[request.pk])
    client.post(url, {"decision": "decline", "decline_reason": ""})
    request.refresh_from_db()
    assert request.status == "pending"
    client.post(url, {"decision": "decline", "decline_reason": "Pauses start next month; please call us."})
    request.refresh_from_db()
    assert request.status == "declined" and request.decline_reason.startswith("Pauses start")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE


@pytest.mark.django_db
def test_a_decided_request_is_not_carried_out_twice(client, glow, front_desk):
    _, membership = ana_garcia(glow[0])
    request = _pause_request(membership)
    actor = Actor.staff(front_desk)
    approve_member_request(request_id=request.pk, practice_id=None, actor=actor, now=timezone.now())
    with pytest.raises(RequestAlreadyDecided):
        approve_member_request(request_id=request.pk, practice_id=None, actor=actor, now=timezone.now())
    assert Event.objects.filter(membership=membership, kind=EventKind.PAUSED).count() == 1


@pytest.mark.django_db
def test_another_practices_staff_cannot_decide_our_request(client, glow):
    _, membership = ana_garcia(glow[0])
    request = _pause_request(membership)
    other = PracticeFactory(slug="elsewhere")
    glow_tier(other)
    client.force_login(staff_user(FRONT_DESK, other))
    response = client.post(reverse("memberships:member_request_decide", args=[request.pk]), {"decision": "approve"})
    assert response.status_code == 404
    assert "Garcia" not in client.get(reverse("memberships:member_requests")).content.decode()
    assert MemberRequest.objects.get().status == "pending"


@pytest.mark.django_db
def test_one_open_request_of_a_kind_per_membership(glow):
    _, membership = ana_garcia(glow[0])
    first = _pause_request(membership, key="a")
    second = _pause_request(membership, key="b")
    assert first.pk == second.pk and MemberRequest.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_staff_approving_at_once_pause_once():
    practice = PracticeFactory(slug="race")
    tier, _, _ = glow_tier(practice)
    membership = active_membership(tier=tier)
    request = _pause_request(membership)
    desks = [staff_user(FRONT_DESK, practice, username=f"desk{i}") for i in range(2)]

    def approve(i):
        return approve_member_request(request_id=request.pk, practice_id=practice.pk,
                                      actor=Actor.staff(desks[i]), now=timezone.now())

    results, errors = hammer(approve, 2)
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], RequestAlreadyDecided)
    assert Event.objects.filter(membership=membership, kind=EventKind.PAUSED).count() == 1
    assert AuditLog.objects.filter(action="member_request_approve").count() == 1
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED
