"""The admin for groups: a group manager sees and configures every practice of their group (and no
other group's); a practice's manager sees their practice only, as before, and cannot move it into a
group; groups are made by a superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from memberships.models import Member, Practice, StaffProfile
from memberships.roles import MANAGER
from tests.factories import MemberFactory, staff_user

from .group_world import build_group, group_manager


@pytest.fixture
def world(db):
    world = build_group()
    for practice, last in ((world.glow, "Glowmember"), (world.bloom, "Bloommember"), (world.other, "Othermember")):
        MemberFactory(practice=practice, last_name=last)
    return world


def test_a_group_manager_sees_every_practice_of_the_group_and_nothing_else(client, world):
    client.force_login(group_manager(world.organization, world.glow))
    members = client.get("/admin/memberships/member/").content.decode()
    assert "Glowmember" in members and "Bloommember" in members and "Othermember" not in members
    practices = client.get("/admin/memberships/practice/").content.decode()
    assert "Glow Aesthetics" in practices and "Bloom Med Spa" in practices and "Elsewhere" not in practices
    bloom_member = Member.objects.get(last_name="Bloommember")
    assert client.get(f"/admin/memberships/member/{bloom_member.pk}/change/").status_code == 200
    other_member = Member.objects.get(last_name="Othermember")
    assert client.get(f"/admin/memberships/member/{other_member.pk}/change/").status_code == 302   # "doesn't exist"
    groups = client.get("/admin/memberships/organization/")
    assert groups.status_code == 200
    body = groups.content.decode()
    assert "Glow Group" in body and "Elsewhere Group" not in body
    page = client.get(f"/admin/memberships/organization/{world.organization.pk}/change/").content.decode()
    assert "Downtown" in page and "Harbor" in page
    assert client.get(f"/admin/memberships/organization/{world.other_org.pk}/change/").status_code == 302


def test_a_group_manager_picks_only_the_groups_practices_in_forms(client, world):
    client.force_login(group_manager(world.organization, world.glow))
    form = client.get("/admin/memberships/service/add/").content.decode()
    assert "Glow Aesthetics" in form and "Bloom Med Spa" in form and "Elsewhere" not in form
    response = client.post("/admin/memberships/location/add/", {"practice": world.other.pk, "name": "Sneaky",
                                                                 "timezone": "", "automation_stage": "",
                                                                 "record_adapter": "", "active": "on"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not world.other.locations.filter(name="Sneaky").exists()


def test_a_practice_manager_sees_only_their_practice_and_not_the_group(client, world):
    client.force_login(staff_user(MANAGER, world.glow, username="glowboss"))
    members = client.get("/admin/memberships/member/").content.decode()
    assert "Glowmember" in members and "Bloommember" not in members
    assert client.get("/admin/memberships/organization/").status_code == 403
    # The group a practice belongs to is not theirs to change.
    page = client.get(f"/admin/memberships/practice/{world.glow.pk}/change/").content.decode()
    assert 'name="organization"' not in page


def test_a_superuser_links_staff_only_to_a_clinic_of_their_practice(client, world):
    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-Root-2026!")
    from tests.support.two_factor import give_authenticator

    give_authenticator(admin_user)
    client.force_login(admin_user)
    desk = get_user_model().objects.create_user("desk2", password="pw-Desk-2026!")
    response = client.post("/admin/memberships/staffprofile/add/", {
        "user": desk.pk, "practice": world.glow.pk, "location": world.harbor.pk, "organization": ""})
    assert response.status_code == 200 and "is a location of Bloom Med Spa" in response.content.decode()
    response = client.post("/admin/memberships/staffprofile/add/", {
        "user": desk.pk, "practice": world.glow.pk, "location": world.uptown.pk,
        "organization": world.other_org.pk})
    assert response.status_code == 200 and "is not a practice of Elsewhere Group" in response.content.decode()
    assert not StaffProfile.objects.filter(user=desk).exists()
    assert client.post("/admin/memberships/staffprofile/add/", {
        "user": desk.pk, "practice": world.glow.pk, "location": world.uptown.pk, "organization": ""}
    ).status_code == 302
    assert Practice.objects.get(pk=world.glow.pk).organization == world.organization
