"""Choosing where one works is an event only when the place changes: signing in again at the same
clinic, or posting the same choice twice, writes no second `location_chosen` row; a real move writes
one, naming where from. On PostgreSQL, with real threads: many requests choosing at once write one row
per real move, chained (each row's "from" is the previous row's place), never two for the same move."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from memberships.models import AuditLog, StaffProfile
from memberships.roles import FRONT_DESK
from memberships.services import Actor
from memberships.services.locations import choose_location
from tests.factories import staff_user
from tests.memberships.ledger_checks import hammer

from .group_world import build_group

PASSWORD = "pw-Staff-2026!"
THREADS = 12


def _rows(user):
    return list(AuditLog.objects.filter(user=user, action="location_chosen").order_by("id")
                .values_list("detail__from_location_id", "detail__location_id"))


def _choose(user, location):
    fresh = type(user).objects.get(pk=user.pk)
    return choose_location(user=fresh, place_key=f"l{location.pk}", actor=Actor.staff(fresh), now=timezone.now())


@pytest.mark.django_db
def test_choosing_the_same_clinic_again_is_not_an_event():
    world = build_group()
    user = staff_user(FRONT_DESK, world.glow, username="desk")
    client = Client()
    client.post(reverse("memberships:login"), {"username": "desk", "password": PASSWORD})
    url = reverse("memberships:choose_location")
    assert client.post(url, {"place": f"l{world.uptown.pk}"}).status_code == 302
    assert _rows(user) == [(None, world.uptown.pk)]

    for _ in range(3):                 # the same clinic, chosen again (every morning's sign-in)
        assert client.post(url, {"place": f"l{world.uptown.pk}"}).status_code == 302
        again = Client()
        again.post(reverse("memberships:login"), {"username": "desk", "password": PASSWORD})
        assert again.post(url, {"place": f"l{world.uptown.pk}"}).status_code == 302
    assert _rows(user) == [(None, world.uptown.pk)]
    assert "Location: Uptown" in client.get(reverse("memberships:home")).content.decode()

    assert client.post(url, {"place": f"l{world.downtown.pk}"}).status_code == 302     # a real move
    assert client.post(url, {"place": f"l{world.uptown.pk}"}).status_code == 302       # and back
    assert _rows(user) == [(None, world.uptown.pk), (world.uptown.pk, world.downtown.pk),
                           (world.downtown.pk, world.uptown.pk)]
    assert StaffProfile.objects.get(user=user).location == world.uptown


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_requests_choosing_at_once_write_one_row_per_move():
    world = build_group()
    user = staff_user(FRONT_DESK, world.glow, username="desk")

    results, errors = hammer(lambda i: _choose(user, world.uptown).location_id, THREADS)
    assert errors == [] and results == [world.uptown.pk] * THREADS
    assert _rows(user) == [(None, world.uptown.pk)]          # one move, one row, however many tabs

    targets = [world.downtown, world.uptown]
    results, errors = hammer(lambda i: _choose(user, targets[i % 2]).location_id, THREADS)
    assert errors == []
    rows = _rows(user)
    assert all(earlier[1] == later[0] for earlier, later in zip(rows, rows[1:]))     # one chain
    assert all(frm != to for frm, to in rows)                 # never a row for staying put
    assert StaffProfile.objects.get(user=user).location_id == rows[-1][1]
