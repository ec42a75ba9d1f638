"""A group to redeem in: "Glow Group" owning Glow Aesthetics (clinics Pasadena and Old Town) and
Bloom Med Spa (clinic Harbor); Elsewhere Med Spa belongs to another group. Ana Garcia is a Glow
member whose home is Pasadena, on the Glow tier (one HydraFacial, $50 of product credit). A front
desk works at each clinic."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from memberships.models import Location, Member, Membership, Organization, Practice, Service, StaffProfile, Tier
from memberships.roles import FRONT_DESK
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier, staff_user


@dataclass
class RedeemWorld:
    glow: Practice
    bloom: Practice
    elsewhere: Practice
    pasadena: Location
    old_town: Location
    harbor: Location
    far_away: Location
    tier: Tier
    facial: Service
    credit: Service
    ana: Member
    membership: Membership
    pasadena_desk: object
    old_town_desk: object
    harbor_desk: object
    elsewhere_desk: object


def desk_at(location: Location, username: str):
    """A front desk of the location's practice, working at the location."""
    user = staff_user(FRONT_DESK, location.practice, username=username)
    StaffProfile.objects.filter(user=user).update(location=location)
    user.refresh_from_db()
    return user


def build() -> RedeemWorld:
    group = Organization.objects.create(name="Glow Group", slug="glow-group")
    other_group = Organization.objects.create(name="Elsewhere Group", slug="elsewhere-group")
    glow = PracticeFactory(slug="glow", name="Glow Aesthetics", organization=group)
    bloom = PracticeFactory(slug="bloom", name="Bloom Med Spa", organization=group)
    elsewhere = PracticeFactory(slug="elsewhere", name="Elsewhere Med Spa", organization=other_group)
    pasadena = Location.objects.create(practice=glow, name="Pasadena")
    old_town = Location.objects.create(practice=glow, name="Old Town")
    harbor = Location.objects.create(practice=bloom, name="Harbor")
    far_away = Location.objects.create(practice=elsewhere, name="Far Away")
    tier, facial, credit = glow_tier(glow)
    glow_tier(elsewhere)
    ana = MemberFactory(practice=glow, first_name="Ana", last_name="Garcia", email="ana.garcia@example.com",
                        phone="+14155550123", home_location=pasadena)
    membership = active_membership(tier=tier, member=ana)
    return RedeemWorld(
        glow=glow, bloom=bloom, elsewhere=elsewhere, pasadena=pasadena, old_town=old_town, harbor=harbor,
        far_away=far_away, tier=tier, facial=facial, credit=credit, ana=ana, membership=membership,
        pasadena_desk=desk_at(pasadena, "desk-pasadena"), old_town_desk=desk_at(old_town, "desk-old-town"),
        harbor_desk=desk_at(harbor, "desk-harbor"), elsewhere_desk=desk_at(far_away, "desk-elsewhere"))


def signed_in(user):
    from tests.support.two_factor import VerifyingClient

    client = VerifyingClient()
    client.force_login(user)
    return client


def visit_url(member) -> str:
    return reverse("memberships:visit", args=[member.pk])


def redeem_url(member) -> str:
    return reverse("memberships:visit_redeem", args=[member.pk])
