"""The group dashboard's MRR with prices per location: each location's line counts what its members
pay (a location's own price where their membership was priced there), and the group's total is still
the sum of the practices' own dashboards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import metrics
from billing.group.figures import group_dashboard
from memberships.models import TierLocationPrice
from tests.factories import MemberFactory, active_membership, glow_tier

from .group_world import build_group

pytestmark = pytest.mark.django_db


def test_location_prices_in_the_group_mrr_and_in_the_practice_dashboards():
    world = build_group()
    now = timezone.now()
    glow_tier_, bloom_tier = glow_tier(world.glow)[0], glow_tier(world.bloom)[0]
    TierLocationPrice.objects.create(tier=glow_tier_, location=world.downtown, price_cents=17900)
    TierLocationPrice.objects.create(tier=bloom_tier, location=world.harbor, price_cents=15900)
    for tier, home, priced in [(glow_tier_, world.downtown, True), (glow_tier_, world.downtown, True),
                               (glow_tier_, world.uptown, False), (bloom_tier, world.harbor, True)]:
        membership = active_membership(tier=tier, member=MemberFactory(practice=tier.practice, home_location=home),
                                       now=now - timedelta(days=20))
        if priced:
            type(membership).objects.filter(pk=membership.pk).update(price_location=home)
    board = group_dashboard(organization_id=world.organization.pk, now=now)
    lines = {row.name: row.mrr_cents for row in board.rows if row.members}
    assert lines == {"Downtown": 2 * 17900, "Uptown": 19900, "Harbor": 15900}, lines
    practices = [metrics.dashboard(practice_id=p.pk, now=now).members.total_mrr_cents[-1]
                 for p in (world.glow, world.bloom)]
    assert practices == [2 * 17900 + 19900, 15900]
    assert board.total.mrr_cents == sum(practices)
