"""factory-boy factories for the ledger, and the demo data every test builds on: `glow_tier()` (the demo's
flagship tier), `active_membership()`, `ana_garcia()` (the member the staff pages are tried with),
`staff_user()`."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from memberships import services
from memberships.models import (
    Member,
    Practice,
    RolloverRule,
    Service,
    ServiceKind,
    StaffProfile,
    Tier,
    TierBenefit,
)
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER


class PracticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practice
        django_get_or_create = ["slug"]

    name = "Glow Aesthetics"
    slug = factory.Sequence(lambda n: f"practice-{n}")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    practice = factory.SubFactory(PracticeFactory)
    name = factory.Sequence(lambda n: f"Treatment {n}")
    code = factory.Sequence(lambda n: f"svc-{n}")
    kind = ServiceKind.TREATMENT
    unit_value_cents = 25000


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    practice = factory.SubFactory(PracticeFactory)
    code = factory.Sequence(lambda n: f"tier-{n}")
    name = factory.Sequence(lambda n: f"Tier {n}")
    processor_name = factory.Sequence(lambda n: f"Membership — Tier {n}")
    price_cents = 19900


class TierBenefitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierBenefit

    tier = factory.SubFactory(TierFactory)
    service = factory.SubFactory(ServiceFactory)
    quantity_per_cycle = 1
    rollover = RolloverRule.NONE


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    practice = factory.SubFactory(PracticeFactory)
    member_number = factory.Sequence(lambda n: f"M{n:06d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda o: f"{o.first_name}.{o.last_name}.{o.member_number}@example.com".lower())
    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    sms_consent = True


def glow_tier(practice: Practice | None = None):
    """Glow — $199/month: one HydraFacial (carries over, up to 2) and $50 of product credit."""
    practice = practice or PracticeFactory()
    facial = ServiceFactory(practice=practice, name="HydraFacial", code="hydrafacial", unit_value_cents=25000)
    credit = ServiceFactory(practice=practice, name="Product credit", code="product-credit",
                            kind=ServiceKind.CREDIT, unit_value_cents=1)
    tier = TierFactory(practice=practice, code="glow", name="Glow", processor_name="Membership — Tier B",
                       price_cents=19900)
    TierBenefitFactory(tier=tier, service=facial, quantity_per_cycle=1, rollover=RolloverRule.CARRY_OVER,
                       rollover_cap=2)
    TierBenefitFactory(tier=tier, service=credit, quantity_per_cycle=5000, rollover=RolloverRule.NONE)
    return tier, facial, credit


def active_membership(*, tier, member=None, now=None, cycle_key="inv_seed"):
    """Enroll and pay the first cycle: an active membership with one cycle's balance."""
    now = now or timezone.now()
    member = member or MemberFactory(practice=tier.practice)
    membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                        idempotency_key=f"enroll:{member.pk}", now=now)
    return services.refill_entitlements(membership=membership, cycle_key=f"{cycle_key}:{member.pk}",
                                        actor=services.Actor.processor(), now=now)


def ana_garcia(tier):
    """Ana Garcia on `tier`, first cycle paid: the member the staff pages and the browser are tried with.
    Returns (member, membership)."""
    member = MemberFactory(practice=tier.practice, first_name="Ana", last_name="Garcia",
                           email="ana.garcia@example.com", phone="+14155550123")
    return member, active_membership(tier=tier, member=member)


def staff_user(role: str, practice: Practice, username: str | None = None, password: str = "pw-Staff-2026!"):
    user = get_user_model().objects.create_user(username=username or f"{role.lower().replace(' ', '')}-{practice.slug}",
                                                password=password, is_staff=(role == MANAGER))
    user.groups.add(Group.objects.get(name=role))
    StaffProfile.objects.create(user=user, practice=practice)
    if role == MANAGER:  # managers sign in with a second factor: an authenticator with a known key
        from tests.support.two_factor import give_authenticator

        give_authenticator(user)
    return user


ROLES = [FRONT_DESK, CLINICIAN, MANAGER]
