"""On PostgreSQL, with real threads: moving a member's home location from two desks at once. Each move
that answers "done" is on the timeline once, in the order it happened (each event's "from" is the
previous event's "to"), with its audit row; the member ends where the last event says; one idempotency
key posted many times moves once."""

from __future__ import annotations

import pytest
from django.utils import timezone

from memberships import services
from memberships.errors import LedgerError
from memberships.models import AuditLog, Event, Member
from memberships.roles import FRONT_DESK
from memberships.services.home_location import move_home_location
from tests.factories import MemberFactory, staff_user
from tests.memberships.ledger_checks import hammer

from .group_world import build_group

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 12


def _moves(member):
    return list(Event.objects.filter(member=member, payload__change="home_location").order_by("id")
                .values_list("payload__from_location_id", "payload__to_location_id"))


def test_moving_home_from_many_desks_at_once_keeps_one_story():
    world = build_group()
    member = MemberFactory(practice=world.glow, home_location=world.downtown)
    actor = services.Actor.staff(staff_user(FRONT_DESK, world.glow, username="desk"))
    targets = [world.uptown, world.harbor, world.downtown]

    def move(i):
        try:
            move_home_location(member=Member.objects.get(pk=member.pk), location=targets[i % 3], actor=actor,
                               idempotency_key=f"move-{i}", now=timezone.now())
            return "moved"
        except LedgerError:
            return "refused"

    results, errors = hammer(move, THREADS)
    assert errors == []
    moves = _moves(member)
    assert results.count("moved") == len(moves) >= 1
    assert all(earlier[1] == later[0] for earlier, later in zip(moves, moves[1:]))     # one chain, no lost move
    assert moves[0][0] == world.downtown.pk
    assert Member.objects.get(pk=member.pk).home_location_id == moves[-1][1]
    assert AuditLog.objects.filter(action="home_location_changed", member=member).count() == len(moves)

    # one key posted from many tabs at once: one move
    elsewhere = next(t for t in targets if t.pk != moves[-1][1])
    results, errors = hammer(lambda i: move_home_location(
        member=Member.objects.get(pk=member.pk), location=elsewhere, actor=actor, idempotency_key="one-key",
        now=timezone.now()), THREADS)
    assert errors == [] and len(_moves(member)) == len(moves) + 1
