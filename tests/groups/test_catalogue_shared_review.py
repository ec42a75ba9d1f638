"""Sharing a tier with a sibling whose own service of the same code counts something else: the group's
"$50 of product credit" must not become 5,000 treatments at that practice. A sibling whose service of
a benefit's code is of another kind (units where the group counts cents, or the reverse) is refused
with the reason, and nothing is written there; the other siblings get the tier."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from memberships import services
from memberships.models import Organization, ServiceKind, StaffProfile, Tier, TierBenefit
from memberships.roles import GROUP_MANAGER
from memberships.services.group_catalogue import CREATED, REFUSED, share_tier_with_group
from tests.factories import PracticeFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def test_a_sibling_whose_service_of_that_code_counts_another_kind_is_refused(practice, glow, manager):
    org = Organization.objects.create(name="Glow Group", slug="glow-group")
    practice.organization = org
    practice.save(update_fields=["organization"])
    manager.groups.add(Group.objects.get(name=GROUP_MANAGER))
    StaffProfile.objects.filter(user=manager).update(organization=org)
    manager.refresh_from_db()
    east = PracticeFactory(slug="glow-east", name="Glow East", organization=org)
    west = PracticeFactory(slug="glow-west", name="Glow West", organization=org)
    # West's "product-credit" is a treatment counted in units (a product consultation), not dollars
    ServiceFactory(practice=west, code="product-credit", name="Product consultation", kind=ServiceKind.TREATMENT)

    done = {d.practice.slug: d for d in share_tier_with_group(tier=glow[0], actor=services.Actor.staff(manager),
                                                              now=timezone.now())}

    assert done["glow-east"].status == CREATED
    assert done["glow-west"].status == REFUSED
    assert "Product consultation" in done["glow-west"].reason
    assert not Tier.objects.filter(practice=west).exists()
    assert not TierBenefit.objects.filter(tier__practice=west).exists()
