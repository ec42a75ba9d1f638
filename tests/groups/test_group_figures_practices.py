"""Stored group figures are the group's practices' as they are now: a practice that left the group
after the figures were taken is not shown to the group it left (neither its name, its locations nor
its figures in the total, on the page or in the CSV), and one that joined is there; the figures are
computed again instead. The moment they describe is said in the group's time zone, naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.urls import reverse
from django.utils import timezone

from billing.group import snapshot
from billing.models import GroupFigures

from .group_world import build_group, group_manager
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


# -- "Figures as of": in the group's time zone (its charts'), saying which ----------------------------

def _as_of(client, owner):
    client.force_login(owner)
    body = client.get(reverse("group:dashboard")).content.decode()
    return " ".join(body.split("Figures as of ", 1)[1].split(";", 1)[0].split())


def test_figures_as_of_is_said_in_the_groups_zone_with_its_name(client, db, time_machine):
    """Bloom (Tokyo) comes first, so the group's months and weeks are Tokyo's: the moment is too,
    named, not the site's Los Angeles clock unnamed (17 hours behind: figures that looked a day old)."""
    world = build_group()
    world.bloom.timezone = "Asia/Tokyo"
    world.bloom.save(update_fields=["timezone"])
    owner = group_manager(world.organization, world.glow)
    taken = datetime(2026, 12, 6, 10, 58, tzinfo=UTC)
    time_machine.move_to(taken + timedelta(minutes=2), tick=False)
    snapshot.refresh(organization_id=world.organization.pk, now=taken)
    assert _as_of(client, owner) == "Dec 6, 7:58 PM JST"
    export = client.get(reverse("group:export"))
    assert export["Content-Disposition"].endswith('-20261206-1958.csv"')
    response = client.post(reverse("group:refresh"), follow=True)           # computed again, now
    assert "Figures as of 20:00:00 JST." in response.content.decode()


def test_figures_as_of_tells_the_two_half_past_ones_of_the_night_the_clocks_go_back(client, db, time_machine):
    world = build_group()                                 # both practices in Los Angeles
    owner = group_manager(world.organization, world.glow)
    for hour, said in ((8, "Nov 1, 1:30 AM PDT"), (9, "Nov 1, 1:30 AM PST")):       # an hour apart
        time_machine.move_to(datetime(2026, 11, 1, hour, 35, tzinfo=UTC), tick=False)
        snapshot.refresh(organization_id=world.organization.pk, now=datetime(2026, 11, 1, hour, 30, tzinfo=UTC))
        assert _as_of(client, owner) == said
