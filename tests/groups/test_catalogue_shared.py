"""The group's catalogue, defined once: a tier shared by one practice of the group becomes each other
practice's own versioned tier (its own services, same price and benefits), once however often it is
shared; a new version of the group tier brings each practice a new version; a practice whose own
treatment names the processor name would print on card statements is refused, changing nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from memberships import services
from memberships.errors import InvalidTier, NotAllowed
from memberships.models import AuditLog, Organization, Service, StaffProfile, Tier
from memberships.roles import GROUP_MANAGER
from memberships.services.group_catalogue import CREATED, IN_STEP, REFUSED, share_tier_with_group
from tests.factories import PracticeFactory, ServiceFactory, glow_tier


@pytest.fixture
def group(practice, glow, manager):
    org = Organization.objects.create(name="Glow Group", slug="glow-group")
    practice.organization = org
    practice.save(update_fields=["organization"])
    manager.groups.add(Group.objects.get(name=GROUP_MANAGER))       # the group's manager shares
    StaffProfile.objects.filter(user=manager).update(organization=org)
    manager.refresh_from_db()
    east = PracticeFactory(slug="glow-east", name="Glow East", organization=org)
    west = PracticeFactory(slug="glow-west", name="Glow West", organization=org)
    return org, east, west


def _catalogue(practice):
    return [(t.code, t.version, t.active, t.price_cents, t.processor_name, t.redeemable_at,
             sorted((b.service.code, b.service.practice_id == practice.pk, b.quantity_per_cycle, b.rollover,
                     b.rollover_cap) for b in t.benefits.select_related("service")))
            for t in Tier.objects.filter(practice=practice).order_by("code", "version")]


def test_sharing_copies_the_tier_into_every_sibling_once(group, glow, manager):
    _, east, west = group
    tier = glow[0]
    actor = services.Actor.staff(manager)
    done = share_tier_with_group(tier=tier, actor=actor, now=timezone.now())
    assert {(d.practice.slug, d.status) for d in done} == {("glow-east", CREATED), ("glow-west", CREATED)}
    for sibling in (east, west):
        assert _catalogue(sibling) == [("glow", 1, True, 19900, "Membership — Tier B", "group",
                                        [("hydrafacial", True, 1, "carry_over", 2),
                                         ("product-credit", True, 5000, "none", None)])]
        copy = Tier.objects.get(practice=sibling)
        assert copy.copied_from_id == tier.pk and copy.shared_with_group
    before = (_catalogue(east), Service.objects.count(), Tier.objects.count())
    again = share_tier_with_group(tier=tier, actor=actor, now=timezone.now())   # a second click
    assert {d.status for d in again} == {IN_STEP}
    assert (_catalogue(east), Service.objects.count(), Tier.objects.count()) == before
    audits = AuditLog.objects.filter(action="tier_shared_with_group").order_by("id")
    assert [a.detail["created"] for a in audits] == [sorted([east.pk, west.pk]), []]
    assert Tier.objects.get(pk=tier.pk).shared_with_group


def test_a_new_version_of_the_group_tier_reaches_each_practice_as_its_new_version(group, glow, manager):
    _, east, _ = group
    actor = services.Actor.staff(manager)
    share_tier_with_group(tier=glow[0], actor=actor, now=timezone.now())
    v2 = services.new_tier_version(tier=glow[0], now=timezone.now(), price_cents=20900)
    with pytest.raises(InvalidTier):                        # the old version is not the group's any more
        share_tier_with_group(tier=glow[0], actor=actor, now=timezone.now())
    done = share_tier_with_group(tier=v2, actor=actor, now=timezone.now())
    assert {d.status for d in done} == {CREATED}
    versions = [(code, version, active, price) for code, version, active, price, *_ in _catalogue(east)]
    assert versions == [("glow", 1, False, 19900), ("glow", 2, True, 20900)]


def test_a_practice_whose_treatment_the_processor_name_names_is_refused(group, glow, manager):
    _, east, west = group
    ServiceFactory(practice=west, name="Tier B Glow Peel", code="tier-b")      # west sells a "Tier B" treatment
    done = {d.practice.slug: d for d in share_tier_with_group(tier=glow[0], actor=services.Actor.staff(manager),
                                                              now=timezone.now())}
    assert done["glow-east"].status == CREATED
    assert done["glow-west"].status == REFUSED and "card statements" in done["glow-west"].reason
    assert not Tier.objects.filter(practice=west).exists()
    assert not Service.objects.filter(practice=west).exclude(code="tier-b").exists()


def test_a_practice_on_its_own_has_no_group_to_share_with(manager):
    tier, _, _ = glow_tier(PracticeFactory(slug="alone"))
    with pytest.raises(NotAllowed):
        share_tier_with_group(tier=tier, actor=services.Actor.staff(manager), now=timezone.now())
    assert not AuditLog.objects.filter(action="tier_shared_with_group").exists()


def test_only_a_manager_of_the_group_shares_its_catalogue(group, glow, practice):
    from memberships.roles import MANAGER
    from tests.factories import staff_user

    practice_manager = staff_user(MANAGER, practice, username="just-this-practice")
    with pytest.raises(NotAllowed, match="group manager"):
        share_tier_with_group(tier=glow[0], actor=services.Actor.staff(practice_manager), now=timezone.now())
    assert Tier.objects.exclude(practice=practice).count() == 0
