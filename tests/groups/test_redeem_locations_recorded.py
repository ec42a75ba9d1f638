"""Where things happened: a staff member's redemption (the one-call path on PostgreSQL and the locked
path), hold, enrollment and audit rows record the location they work at; the system's, the
processor's and the record's record none; a staff member who chose no location records none."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from memberships import services
from memberships.models import AuditLog, LedgerEntry, Membership, Reservation
from tests.factories import MemberFactory

from .redeem_world import build, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    return build()


def _as_the_desk_passes_it(world):
    """The membership loaded as the pages and the API pass it (member, practice and tier): on
    PostgreSQL the walk-in's one database call takes a group tier's redemption."""
    return Membership.objects.select_related("member__practice", "tier").get(pk=world.membership.pk)


def test_a_redemption_records_the_desks_location_on_either_path(world):
    now = timezone.now()
    harbor = services.Actor.staff(world.harbor_desk)
    with CaptureQueriesContext(connection) as ctx:
        fast = services.redeem_entitlement(membership=_as_the_desk_passes_it(world), service=world.credit,
                                           quantity=100, actor=harbor, idempotency_key="fast", now=now)
    if connection.vendor == "postgresql":
        assert any("ledger_redeem_walk_in" in q["sql"] for q in ctx.captured_queries)
    locked = services.redeem_entitlement(membership=Membership.objects.get(pk=world.membership.pk),
                                         service=world.credit, quantity=100, actor=harbor,
                                         idempotency_key="locked", now=now)
    stored = dict(LedgerEntry.objects.filter(idempotency_key__in=["fast", "locked"])
                  .values_list("idempotency_key", "location_id"))
    assert stored == {"fast": world.harbor.pk, "locked": world.harbor.pk}
    assert fast.location_id == locked.location_id == world.harbor.pk


def test_entries_of_no_desk_record_no_location(world):
    now = timezone.now()
    for actor, key in ((services.Actor.system(), "sys"), (services.Actor.record(), "rec")):
        services.redeem_entitlement(membership=_as_the_desk_passes_it(world), service=world.credit, quantity=100,
                                    actor=actor, idempotency_key=key, now=now)
    assert set(LedgerEntry.objects.filter(membership=world.membership).values_list("location_id", flat=True)) == {None}
    world.harbor_desk.staff_profile.location = None
    world.harbor_desk.staff_profile.save(update_fields=["location"])
    entry = services.redeem_entitlement(membership=_as_the_desk_passes_it(world), service=world.credit, quantity=100,
                                        actor=services.Actor.staff(world.harbor_desk), idempotency_key="none",
                                        now=now)
    assert LedgerEntry.objects.get(pk=entry.pk).location_id is None


def test_a_hold_its_commit_and_the_audit_rows_record_the_location(world):
    now = timezone.now()
    hold = services.reserve_entitlement(membership=world.membership, service=world.facial,
                                        actor=services.Actor.staff(world.harbor_desk), idempotency_key="hold",
                                        now=now)
    assert Reservation.objects.get(pk=hold.pk).location_id == world.harbor.pk
    entry = services.commit_reservation(reservation=hold, actor=services.Actor.staff(world.old_town_desk), now=now)
    assert LedgerEntry.objects.get(pk=entry.pk).location_id == world.old_town.pk
    assert dict(AuditLog.objects.filter(member=world.ana).values_list("action", "location_id")) == {
        "hold": world.harbor.pk, "commit_hold": world.old_town.pk}


def test_an_enrollment_records_where_it_was_sold(world):
    member = MemberFactory(practice=world.glow)
    membership = services.enroll_member(member=member, tier=world.tier, actor=services.Actor.staff(world.old_town_desk),
                                        idempotency_key="enroll-ot", now=timezone.now())
    assert Membership.objects.get(pk=membership.pk).enrolled_location_id == world.old_town.pk
    assert AuditLog.objects.get(action="enroll", member=member).location_id == world.old_town.pk
    online = services.enroll_member(member=MemberFactory(practice=world.glow), tier=world.tier,
                                    actor=services.Actor.system(), idempotency_key="enroll-sys", now=timezone.now())
    assert Membership.objects.get(pk=online.pk).enrolled_location_id is None


def test_page_reads_record_the_location_in_their_own_insert(world):
    """The chart read (its audit row written by the page) and the search (one row per member shown)
    name the desk's location, and cost the page no query of its own."""
    pasadena = signed_in(world.pasadena_desk)
    chart = reverse("memberships:chart", args=[world.ana.pk])
    pasadena.get(chart)
    with CaptureQueriesContext(connection) as ctx:
        assert pasadena.get(chart).status_code == 200
    profile_reads = [q["sql"] for q in ctx.captured_queries
                     if q["sql"].lstrip().startswith("SELECT") and 'FROM "memberships_staffprofile"' in q["sql"]]
    assert profile_reads == []     # the audit row's INSERT reads the location itself
    pasadena.get(reverse("memberships:home"), {"q": "Garcia"})
    harbor = signed_in(world.harbor_desk)
    harbor.get(reverse("memberships:home"), {"q": "Garcia"})
    rows = list(AuditLog.objects.filter(member=world.ana).order_by("id").values_list("action", "location_id"))
    assert rows == [("view_chart", world.pasadena.pk), ("view_chart", world.pasadena.pk),
                    ("search_members", world.pasadena.pk), ("search_members", world.harbor.pk)]


def test_the_records_commit_of_a_hold_is_spent_where_it_was_booked(world):
    now = timezone.now()
    hold = services.reserve_entitlement(membership=world.membership, service=world.facial,
                                        actor=services.Actor.staff(world.harbor_desk), idempotency_key="booked",
                                        now=now)
    entry = services.commit_reservation(reservation=hold, actor=services.Actor.record(), now=now)
    assert LedgerEntry.objects.get(pk=entry.pk).location_id == world.harbor.pk
