"""Moving a member's home location: one door (actor, key, now, audit row, timeline event), a small form
from the chart for the front desk and managers, only to active locations of the member's group; the
balance and the history stay exactly as they were."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships import services
from memberships.errors import IllegalTransition, NotAllowed
from memberships.models import (
    AuditLog,
    EntitlementBalance,
    Event,
    LedgerEntry,
    Location,
    Member,
    Organization,
    TierLocationPrice,
)
from memberships.services.home_location import move_home_location
from tests.factories import MemberFactory, PracticeFactory, active_membership


@pytest.fixture
def north_south(practice):
    return (Location.objects.create(practice=practice, name="North"),
            Location.objects.create(practice=practice, name="South"))


@pytest.fixture
def member_with_history(glow, north_south):
    tier, facial, credit = glow
    member = MemberFactory(practice=tier.practice, home_location=north_south[0])
    membership = active_membership(tier=tier, member=member)
    services.redeem_entitlement(membership=membership, service=credit, quantity=1250, actor=services.Actor.system(),
                                idempotency_key="spend-1", now=timezone.now())
    return membership


def _snapshot(member):
    balances = sorted(EntitlementBalance.objects.filter(membership__member=member)
                      .values_list("service_id", "balance", "reserved"))
    entries = list(LedgerEntry.objects.filter(membership__member=member).order_by("id")
                   .values_list("id", "kind", "quantity", "balance_after"))
    timeline = list(Event.objects.filter(member=member).order_by("id").values_list("id", "kind", "summary"))
    return balances, entries, timeline


def test_moving_home_keeps_balance_entries_and_timeline_and_adds_one_event(member_with_history, north_south, manager):
    member = member_with_history.member
    balances, entries, timeline = _snapshot(member)
    now = timezone.now()
    moved = move_home_location(member=member, location=north_south[1], actor=services.Actor.staff(manager),
                               idempotency_key="move-1", now=now)
    assert moved.home_location_id == Member.objects.get(pk=member.pk).home_location_id == north_south[1].pk
    after_balances, after_entries, after_timeline = _snapshot(member)
    assert (after_balances, after_entries) == (balances, entries)
    assert after_timeline[:-1] == timeline
    assert after_timeline[-1][2] == "Home location changed from North to South"
    audit = AuditLog.objects.get(action="home_location_changed")
    assert (audit.member_id, audit.user_id, audit.detail) == (member.pk, manager.pk,
                                                              {"from": north_south[0].pk, "to": north_south[1].pk})
    # the same request again (a double click): nothing more
    again = move_home_location.outcome(member=member, location=north_south[1], actor=services.Actor.staff(manager),
                                       idempotency_key="move-1", now=now)
    assert again.replayed and Event.objects.filter(member=member).count() == len(after_timeline)
    with pytest.raises(IllegalTransition):
        move_home_location(member=member, location=north_south[1], actor=services.Actor.staff(manager),
                           idempotency_key="move-2", now=now)


def test_only_active_locations_of_the_members_group(member_with_history, north_south, practice, manager):
    member = member_with_history.member
    actor = services.Actor.staff(manager)
    closed = Location.objects.create(practice=practice, name="Closed", active=False)
    elsewhere = Location.objects.create(practice=PracticeFactory(slug="elsewhere"), name="Elsewhere")
    for i, location in enumerate([closed, elsewhere]):
        with pytest.raises(NotAllowed):
            move_home_location(member=member, location=location, actor=actor, idempotency_key=f"no-{i}",
                               now=timezone.now())
    assert Member.objects.get(pk=member.pk).home_location_id == north_south[0].pk
    assert not AuditLog.objects.filter(action="home_location_changed").exists()
    # in a group, a sibling practice's clinic is a home too
    group = Organization.objects.create(name="Glow Group", slug="glow-group")
    practice.organization = group
    practice.save(update_fields=["organization"])
    sibling = Location.objects.create(practice=PracticeFactory(slug="glow-east", organization=group), name="East")
    move_home_location(member=member, location=sibling, actor=actor, idempotency_key="east", now=timezone.now())
    assert Member.objects.get(pk=member.pk).home_location_id == sibling.pk


def test_the_front_desk_moves_it_from_the_chart_and_is_told_what_happens_to_the_price(
        client, front_desk, clinician, member_with_history, north_south, glow):
    member = member_with_history.member
    TierLocationPrice.objects.create(tier=glow[0], location=north_south[1], price_cents=17900)
    client.force_login(front_desk)
    chart = client.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    url = reverse("memberships:home_location", args=[member.pk])
    assert url in chart
    page = client.get(url).content.decode()
    assert "Now: <strong data-testid=\"home-location\">North</strong>" in page
    assert "The price does not change now: the member keeps paying $199.00/month for Glow." in page
    assert "At South, Glow costs $179.00/month." in page
    assert AuditLog.objects.filter(action="home_location_page", member=member).exists()
    token = "a" * 32
    answer = client.post(url, {"location": north_south[1].pk, "token": token}, follow=True)
    assert "Home location is now South." in answer.content.decode()
    assert Member.objects.get(pk=member.pk).home_location_id == north_south[1].pk
    replay = client.post(url, {"location": north_south[1].pk, "token": token}, follow=True)
    assert "already done" in replay.content.decode()
    assert Event.objects.filter(member=member, summary__startswith="Home location changed").count() == 1
    client.force_login(clinician)
    assert client.get(url).status_code == 403
