"""Stored group figures are the group's practices' as they are now: a practice that left the group
after the figures were taken is not shown to the group it left (neither its name, its locations nor
its figures in the total, on the page or in the CSV), and one that joined is there; the figures are
computed again instead."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from billing.group import snapshot
from billing.models import GroupFigures

from .group_world import group_manager
from .test_group_dashboard import populated  # noqa: F401 (fixture)


def test_a_practice_that_left_the_group_is_not_shown_from_the_stored_figures(client, populated):
    world, _, _ = populated
    owner = group_manager(world.organization, world.glow)
    taken = timezone.now() - timedelta(minutes=2)
    snapshot.refresh(organization_id=world.organization.pk, now=taken)
    world.bloom.organization = world.other_org                   # Bloom is sold to another group
    world.bloom.save(update_fields=["organization"])
    client.force_login(owner)

    body = client.get(reverse("group:dashboard")).content.decode()
    assert "Bloom Med Spa" not in body and "Harbor" not in body
    assert 'data-testid="group-members">3<' in body                       # Glow's own three (Hale is Bloom's)
    lines = client.get(reverse("group:export")).content.decode().strip().splitlines()
    assert not any("Bloom" in line or "Harbor" in line for line in lines)
    assert lines[-1].split(",")[:3] == ["Total", "", "3"]
    assert GroupFigures.objects.get(organization=world.organization).computed_at > taken


def test_a_practice_that_joined_the_group_is_shown_at_once(client, populated):
    world, _, _ = populated
    owner = group_manager(world.organization, world.glow)
    snapshot.refresh(organization_id=world.organization.pk, now=timezone.now() - timedelta(minutes=2))
    world.other.organization = world.organization
    world.other.save(update_fields=["organization"])
    client.force_login(owner)
    body = client.get(reverse("group:dashboard")).content.decode()
    assert "3 practices: Bloom Med Spa, Elsewhere Med Spa, Glow Aesthetics." in body
    assert "Elsewhere Clinic" in body
