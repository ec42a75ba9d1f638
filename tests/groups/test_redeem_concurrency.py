"""On PostgreSQL, with 50 real threads: redeeming at a sibling location is exactly once.

- 50 requests posting one visit-page form (one token: a double click, a retry, 50 times) make one
  entry, at Harbor, and every answer is the redemption or its replay;
- 50 requests with 50 tokens racing on the last HydraFacial make one entry, the balance reaches
  0 and never below, and no key has two entries;
- 50 desks of the group (home and sibling, group tier) redeeming the last unit through the door
  with different keys: one entry, the others refused as "not enough".
- 50 sibling requests on a home-only tier: nothing written, every answer the refusal."""

import re

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from memberships import services
from memberships.errors import InsufficientBalance
from memberships.models import AuditLog, EntitlementBalance, LedgerEntry, Membership, RedeemableAt
from tests.memberships.ledger_checks import assert_ledger_consistent, hammer

from .redeem_world import build, redeem_url, signed_in, visit_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 50


def _field(html: str, name: str) -> str:
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"', html).group(1)


def _clients(user, n):
    return [signed_in(user) for _ in range(n)]


def _post_all(clients, url, forms):
    def go(i):
        try:
            return clients[i].post(url, forms[i]).status_code
        finally:
            connection.close()

    return hammer(go, len(clients))


def _entries(world, service):
    return LedgerEntry.objects.filter(membership=world.membership, service=service, kind="redeem")


def _balance(world, service):
    return EntitlementBalance.objects.get(membership=world.membership, service=service).balance


def test_fifty_posts_of_one_sibling_form_redeem_once(db):
    world = build()
    clients = _clients(world.harbor_desk, THREADS)
    html = clients[0].get(visit_url(world.ana)).content.decode()
    form = {"service": world.facial.pk, "quantity": "1", "token": _field(html, "token"),
            "version": _field(html, "version")}

    statuses, errors = _post_all(clients, redeem_url(world.ana), [form] * THREADS)

    assert errors == [] and statuses == [302] * THREADS
    assert list(_entries(world, world.facial).values_list("location_id", flat=True)) == [world.harbor.pk]
    assert _balance(world, world.facial) == 0
    assert AuditLog.objects.filter(action="redeem", member=world.ana).count() == 1
    assert_ledger_consistent(world.membership)


def test_fifty_sibling_forms_racing_on_the_last_facial_spend_it_once(db):
    world = build()
    clients = _clients(world.harbor_desk, THREADS)
    version = _field(clients[0].get(visit_url(world.ana)).content.decode(), "version")   # the page all desks see
    forms = [{"service": world.facial.pk, "quantity": "1", "token": f"{i:032x}", "version": version}
             for i in range(THREADS)]

    statuses, errors = _post_all(clients, redeem_url(world.ana), forms)

    assert errors == []
    # one spends; the others opened the chart before it and are told so (409), or find it spent (400)
    assert sorted(statuses).count(302) == 1 and set(statuses) <= {302, 400, 409}
    assert _entries(world, world.facial).count() == 1 and _balance(world, world.facial) == 0
    assert not LedgerEntry.objects.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert_ledger_consistent(world.membership)


def test_fifty_desks_of_the_group_with_different_keys_take_the_last_unit_once(db):
    world = build()
    desks = [world.harbor_desk, world.pasadena_desk, world.old_town_desk]
    now = timezone.now()

    def go(i):
        membership = Membership.objects.select_related("member__practice", "tier").get(pk=world.membership.pk)
        return services.redeem_at_desk(membership=membership, service=world.facial, quantity=1,
                                       actor=services.Actor.staff(desks[i % 3]), idempotency_key=f"desk-{i}",
                                       chart_version=10**12, now=now)

    results, errors = hammer(go, THREADS)

    assert len(results) == 1
    assert len(errors) == THREADS - 1 and all(isinstance(e, InsufficientBalance) for e in errors), errors[:3]
    entry = _entries(world, world.facial).get()
    assert entry.location_id == {world.harbor_desk.pk: world.harbor.pk, world.pasadena_desk.pk: world.pasadena.pk,
                                 world.old_town_desk.pk: world.old_town.pk}[entry.actor_user_id]
    assert _balance(world, world.facial) == 0
    assert_ledger_consistent(world.membership)


def test_fifty_replays_of_one_key_at_a_sibling_make_one_entry(db):
    world = build()
    now = timezone.now()
    actor = services.Actor.staff(world.harbor_desk)

    def go(i):
        membership = Membership.objects.select_related("member__practice", "tier").get(pk=world.membership.pk)
        return services.redeem_at_desk(membership=membership, service=world.credit, quantity=700, actor=actor,
                                       idempotency_key="one-click", chart_version=10**12, now=now)

    results, errors = hammer(go, THREADS)

    assert errors == [] and len({r.entry.pk for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert _balance(world, world.credit) == 4300
    assert LedgerEntry.objects.get(idempotency_key="one-click").location_id == world.harbor.pk


def test_fifty_sibling_requests_on_a_home_only_tier_write_nothing(db):
    world = build()
    world.tier.redeemable_at = RedeemableAt.HOME
    world.tier.save(update_fields=["redeemable_at"])
    clients = _clients(world.harbor_desk, THREADS)
    forms = [{"service": world.facial.pk, "quantity": "1", "token": f"{i:032x}", "version": "0"}
             for i in range(THREADS)]

    statuses, errors = _post_all(clients, redeem_url(world.ana), forms)

    assert errors == [] and statuses == [400] * THREADS
    assert _entries(world, world.facial).count() == 0 and _balance(world, world.facial) == 1
    assert not AuditLog.objects.filter(action="redeem").exists()
