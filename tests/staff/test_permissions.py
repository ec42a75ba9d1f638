"""Each role against each staff page: the permission is checked on the server."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import staff_user

PAGES = [
    # (url name, needs a member, expected status per role)
    ("memberships:home", False, {FRONT_DESK: 200, CLINICIAN: 200, MANAGER: 200}),
    ("memberships:chart", True, {FRONT_DESK: 200, CLINICIAN: 200, MANAGER: 200}),
    ("memberships:reverse", "entry", {FRONT_DESK: 200, CLINICIAN: 200, MANAGER: 200}),
    ("memberships:enroll_new", False, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("memberships:enroll", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("memberships:change_tier", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("memberships:pause", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("memberships:resume", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("memberships:cancel", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("card_link", True, {FRONT_DESK: 200, CLINICIAN: 403, MANAGER: 200}),
    ("manager:dashboard", False, {FRONT_DESK: 403, CLINICIAN: 403, MANAGER: 200}),
    ("manager:dunning", False, {FRONT_DESK: 403, CLINICIAN: 403, MANAGER: 200}),
    ("admin:index", False, {FRONT_DESK: 302, CLINICIAN: 302, MANAGER: 200}),
]


def _url(name, needs, member, entry):
    if needs == "entry":
        return reverse(name, args=[member.pk, entry.pk])
    if needs:
        return reverse(name, args=[member.pk])
    return reverse(name)


@pytest.fixture
def redeemed(member_with_glow, manager, now):
    from memberships import services

    member, membership, facial, _ = member_with_glow
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.staff(manager),
                                        idempotency_key="perm-test", now=now)
    return member, entry


@pytest.mark.parametrize("role", [FRONT_DESK, CLINICIAN, MANAGER])
@pytest.mark.parametrize("name,needs,expected", PAGES, ids=[p[0] for p in PAGES])
def test_role_against_page(client, practice, redeemed, role, name, needs, expected):
    member, entry = redeemed
    client.force_login(staff_user(role, practice, username=f"u-{role}"))
    response = client.get(_url(name, needs, member, entry))
    assert response.status_code == expected[role]
    if expected[role] == 403:
        assert b"have access to this page" in response.content
    if name == "admin:index" and expected[role] == 302:
        assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("name,needs,expected", PAGES, ids=[p[0] for p in PAGES])
def test_anonymous_goes_to_login(client, redeemed, name, needs, expected):
    member, entry = redeemed
    response = client.get(_url(name, needs, member, entry))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("name,needs,expected", PAGES[:-1], ids=[p[0] for p in PAGES[:-1]])
def test_user_without_a_role_is_refused(client, redeemed, name, needs, expected):
    member, entry = redeemed
    client.force_login(get_user_model().objects.create_user("nobody", password="x-Pass-2026!"))
    assert client.get(_url(name, needs, member, entry)).status_code == 403


@pytest.mark.parametrize("name", ["memberships:redeem", "memberships:pause", "memberships:cancel",
                                  "memberships:change_tier", "memberships:enroll"])
def test_clinician_cannot_post_changes(client, practice, member_with_glow, name):
    member, membership, facial, _ = member_with_glow
    client.force_login(staff_user(CLINICIAN, practice))
    response = client.post(reverse(name, args=[member.pk]), {"service": facial.pk, "quantity": "1"})
    expected = 403 if name != "memberships:redeem" else 400  # clinicians may redeem (bad form: no token)
    assert response.status_code == expected


def test_staff_of_another_practice_sees_no_member(client, member_with_glow):
    from tests.factories import PracticeFactory

    member, *_ = member_with_glow
    other = PracticeFactory(slug="elsewhere")
    client.force_login(staff_user(FRONT_DESK, other))
    assert client.get(reverse("memberships:chart", args=[member.pk])).status_code == 404
    assert client.get(reverse("memberships:home"), {"q": "Garcia"}).context["results"] == []


@pytest.mark.parametrize("name", ["manager:mark_contacted", "manager:resend_card_link"])
def test_front_desk_cannot_post_to_manager_pages(client, practice, name):
    client.force_login(staff_user(FRONT_DESK, practice))
    assert client.post(reverse(name, args=[1])).status_code == 403
