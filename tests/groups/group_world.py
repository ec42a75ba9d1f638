"""A group to try things on: "Glow Group" owning two practices — Glow Aesthetics with two clinics
(Downtown, Uptown) and Bloom Med Spa with one (Harbor) — plus a practice of another group, and the
staff users the tests sign in as (a group manager has an authenticator, as every manager does)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from memberships.models import Location, Organization, Practice, StaffProfile
from memberships.roles import GROUP_MANAGER
from tests.factories import PracticeFactory


@dataclass
class GroupWorld:
    organization: Organization
    glow: Practice
    bloom: Practice
    downtown: Location
    uptown: Location
    harbor: Location
    other_org: Organization
    other: Practice
    other_clinic: Location


def build_group() -> GroupWorld:
    org = Organization.objects.create(name="Glow Group", slug="glow-group")
    glow = PracticeFactory(slug="glow", name="Glow Aesthetics", organization=org)
    bloom = PracticeFactory(slug="bloom", name="Bloom Med Spa", organization=org)
    other_org = Organization.objects.create(name="Elsewhere Group", slug="elsewhere-group")
    other = PracticeFactory(slug="elsewhere", name="Elsewhere Med Spa", organization=other_org)
    return GroupWorld(
        organization=org, glow=glow, bloom=bloom,
        downtown=Location.objects.create(practice=glow, name="Downtown"),
        uptown=Location.objects.create(practice=glow, name="Uptown"),
        harbor=Location.objects.create(practice=bloom, name="Harbor"),
        other_org=other_org, other=other,
        other_clinic=Location.objects.create(practice=other, name="Elsewhere Clinic"),
    )


def group_manager(organization: Organization, practice: Practice, username: str = "owner", *,
                  location: Location | None = None, password: str = "pw-Owner-2026!"):
    from tests.support.two_factor import give_authenticator

    user = get_user_model().objects.create_user(username=username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=GROUP_MANAGER))
    StaffProfile.objects.create(user=user, practice=practice, organization=organization, location=location)
    give_authenticator(user)
    return user
