"""Where a staff member works today: chosen after signing in (asked only when there is a choice),
remembered for the next sign-in, shown in the header with a way to change it, and audited. A group
manager chooses among every clinic of the group, and choosing one of another practice opens that
practice's pages; practice staff choose among their own practice's clinics only."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from memberships.models import AuditLog, Location, StaffProfile
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import PracticeFactory, staff_user
from tests.support.two_factor import code_for

from .group_world import build_group, group_manager

PASSWORD = "pw-Staff-2026!"


@pytest.fixture
def world(db):
    return build_group()


def _login(client, username, password=PASSWORD, next_url=None):
    url = reverse("memberships:login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"username": username, "password": password})


def _choices(response) -> list[str]:
    return re.findall(r'name="place" value="([^"]+)"', response.content.decode())


def _checked(response) -> list[str]:
    return re.findall(r'name="place" value="([^"]+)"[^>]*checked', response.content.decode())


def test_a_practice_without_locations_signs_in_exactly_as_before(db):
    practice = PracticeFactory(slug="solo", name="Solo Spa")
    staff_user(FRONT_DESK, practice, username="desk")
    client = Client()
    response = _login(client, "desk")
    assert response.status_code == 302 and response["Location"] == reverse("memberships:home")
    page = client.get(reverse("memberships:home"))
    assert 'data-testid="staff-location"' not in page.content.decode()
    assert client.get(reverse("memberships:choose_location") + "?next=/").status_code == 302
    assert not AuditLog.objects.filter(action="location_chosen").exists()


def test_the_only_location_is_chosen_without_asking(world):
    world.uptown.delete()
    user = staff_user(CLINICIAN, world.glow, username="clin")
    client = Client()
    response = client.get(_login(client, "clin")["Location"])
    assert response.status_code == 302 and response["Location"] == reverse("memberships:home")
    assert StaffProfile.objects.get(user=user).location == world.downtown
    header = client.get(reverse("memberships:home")).content.decode()
    assert "Location: Downtown" in header and "change</a>" not in header
    assert AuditLog.objects.filter(user=user, action="location_chosen").count() == 1
    client.get(_login(Client(), "clin")["Location"])        # the next sign-in: nothing changed, nothing written
    assert AuditLog.objects.filter(user=user, action="location_chosen").count() == 1


def test_staff_choose_among_their_practices_locations_and_it_is_remembered(world):
    user = staff_user(FRONT_DESK, world.glow, username="desk")
    client = Client()
    chooser = _login(client, "desk", next_url="/members/new/")["Location"]
    assert chooser.startswith(reverse("memberships:choose_location"))
    page = client.get(chooser)
    assert page.status_code == 200
    assert _choices(page) == [f"l{world.downtown.pk}", f"l{world.uptown.pk}"]     # not Bloom's, not another group's
    assert _checked(page) == []
    done = client.post(chooser, {"place": f"l{world.uptown.pk}", "next": "/members/new/"})
    assert done.status_code == 302 and done["Location"] == "/members/new/"
    profile = StaffProfile.objects.get(user=user)
    assert (profile.practice, profile.location) == (world.glow, world.uptown)
    row = AuditLog.objects.get(user=user, action="location_chosen")
    assert row.detail["location_id"] == world.uptown.pk and row.detail["from_location_id"] is None
    header = client.get(reverse("memberships:home")).content.decode()
    assert "Location: Uptown" in header and "change</a>" in header

    again = Client()
    assert _checked(again.get(_login(again, "desk")["Location"])) == [f"l{world.uptown.pk}"]   # remembered


def test_staff_cannot_choose_a_location_of_another_practice(world):
    user = staff_user(MANAGER, world.glow, username="boss")
    client = Client()
    client.force_login(user)
    from tests.support.two_factor import verify_session

    verify_session(client, user)
    url = reverse("memberships:choose_location")
    for place in (f"l{world.harbor.pk}", f"l{world.other_clinic.pk}", f"p{world.bloom.pk}", "", "l999999"):
        response = client.post(url, {"place": place})
        assert response.status_code == 400, place
    profile = StaffProfile.objects.get(user=user)
    assert (profile.practice, profile.location) == (world.glow, None)
    assert not AuditLog.objects.filter(action="location_chosen").exists()


def test_an_inactive_location_is_not_offered(world):
    world.uptown.active = False
    world.uptown.save(update_fields=["active"])
    user = staff_user(FRONT_DESK, world.glow, username="desk")
    client = Client()
    client.get(_login(client, "desk")["Location"])
    assert StaffProfile.objects.get(user=user).location == world.downtown


def test_a_group_manager_signs_in_with_the_code_then_chooses_any_clinic_of_the_group(world):
    user = group_manager(world.organization, world.glow, location=world.downtown)
    client = Client()
    to_code = _login(client, "owner", "pw-Owner-2026!")["Location"]
    assert to_code.startswith(reverse("memberships:two_factor_verify"))
    assert client.get(reverse("memberships:choose_location")).status_code == 302     # not before the code
    device = user.totpdevice_set.get()
    after_code = client.post(to_code, {"code": code_for(device)})
    assert after_code.status_code == 302 and after_code["Location"].startswith(reverse("memberships:choose_location"))
    page = client.get(after_code["Location"])
    body = page.content.decode()
    assert _choices(page) == [f"l{world.harbor.pk}", f"l{world.downtown.pk}", f"l{world.uptown.pk}"]
    assert _checked(page) == [f"l{world.downtown.pk}"]
    assert "Bloom Med Spa" in body and "Glow Aesthetics" in body and "Elsewhere" not in body

    assert client.post(after_code["Location"], {"place": f"l{world.harbor.pk}"}).status_code == 302
    profile = StaffProfile.objects.get(user=user)
    assert (profile.practice, profile.location) == (world.bloom, world.harbor)
    row = AuditLog.objects.get(user=user, action="location_chosen")
    assert row.detail == {"practice_id": world.bloom.pk, "location_id": world.harbor.pk,
                          "from_practice_id": world.glow.pk, "from_location_id": world.downtown.pk}
    assert row.location == world.harbor                      # the audit trail's location: where they work now
    assert "Location: Harbor (Bloom Med Spa)" in client.get(reverse("memberships:home")).content.decode()
    # Another group's clinic: refused, nothing changes.
    refused = client.post(reverse("memberships:choose_location"), {"place": f"l{world.other_clinic.pk}"})
    assert refused.status_code == 400
    assert StaffProfile.objects.get(user=user).practice == world.bloom


def test_a_group_practice_without_locations_is_a_choice_of_its_own(world):
    Location.objects.filter(practice=world.bloom).delete()
    user = group_manager(world.organization, world.glow)
    client = Client()
    client.force_login(user)
    from tests.support.two_factor import verify_session

    verify_session(client, user)
    page = client.get(reverse("memberships:choose_location"))
    assert _choices(page) == [f"p{world.bloom.pk}", f"l{world.downtown.pk}", f"l{world.uptown.pk}"]
    assert client.post(reverse("memberships:choose_location"), {"place": f"p{world.bloom.pk}"}).status_code == 302
    profile = StaffProfile.objects.get(user=user)
    assert (profile.practice, profile.location) == (world.bloom, None)


@pytest.mark.parametrize("case", ["role without a group", "group without the role"])
def test_a_group_manager_needs_both_the_role_and_the_group(world, case):
    from django.contrib.auth.models import Group

    from memberships.roles import GROUP_MANAGER

    user = group_manager(world.organization, world.glow)
    if case == "role without a group":
        StaffProfile.objects.filter(user=user).update(organization=None)
    else:
        user.groups.set([Group.objects.get(name=MANAGER)])
        assert GROUP_MANAGER not in user.groups.values_list("name", flat=True)
    client = Client()
    client.force_login(user)
    from tests.support.two_factor import verify_session

    verify_session(client, user)
    page = client.get(reverse("memberships:choose_location"))
    assert _choices(page) == [f"l{world.downtown.pk}", f"l{world.uptown.pk}"]
    assert client.post(reverse("memberships:choose_location"), {"place": f"l{world.harbor.pk}"}).status_code == 400
