"""On PostgreSQL, with a real second connection: a payment webhook or a redemption that waits for the
membership's lock while a desk's tier change commits still finds the membership (on its new tier).
PostgreSQL re-checks a locking query's joins against the row just committed and, with the tier
joined, used to find nothing: the webhook failed with "membership does not exist" and the desk saw
an error page."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from memberships import services
from memberships.models import Membership
from memberships.services import sql
from tests.factories import MemberFactory, TierFactory
from tests.support.waiting import PATIENCE, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _while_a_tier_change_commits(membership, new_tier, read):
    """Run `read()` in this thread while another connection holds the membership's row changed to
    `new_tier`, committing once `read` is waiting for that row's lock."""
    holding, read_done, done, waited = threading.Event(), threading.Event(), threading.Event(), []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        reader = cursor.fetchone()[0]

    def desk():
        try:
            with transaction.atomic():
                Membership.objects.select_for_update().get(pk=membership.pk)
                Membership.objects.filter(pk=membership.pk).update(tier=new_tier)
                holding.set()
                with connection.cursor() as cursor:
                    waited.append(wait_until(lambda: _blocked_by_me(cursor, reader) or read_done.is_set(), step=0.02)
                                  and not read_done.is_set())
        finally:
            connection.close()
            done.set()

    threading.Thread(target=desk).start()
    assert holding.wait(PATIENCE)
    try:
        with transaction.atomic():
            found = read()
    finally:
        read_done.set()
    assert done.wait(PATIENCE)
    assert waited == [True], "the read did not wait for the tier change's lock"
    return found


def _blocked_by_me(cursor, pid) -> bool:
    cursor.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", [pid])
    return cursor.fetchone()[0]


def test_the_webhook_lock_finds_the_membership_a_tier_change_just_moved(practice, glow):
    membership = services.enroll_member(member=MemberFactory(practice=practice), tier=glow[0],
                                        actor=services.Actor.system(), idempotency_key="e", now=timezone.now())
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    locking = Membership.objects.select_for_update(of=("self",)).select_related("member__practice", "tier")

    found = _while_a_tier_change_commits(membership, luxe, lambda: sql.get_locked(locking, membership.pk))

    assert found.pk == membership.pk and found.tier == luxe


def test_the_redemption_lock_finds_the_membership_a_tier_change_just_moved(practice, glow):
    membership = services.enroll_member(member=MemberFactory(practice=practice), tier=glow[0],
                                        actor=services.Actor.system(), idempotency_key="e", now=timezone.now())
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)

    found = _while_a_tier_change_commits(
        membership, luxe, lambda: sql.lock_membership(membership_id=membership.pk, service_id=None))

    assert found.pk == membership.pk and found.tier.pk == luxe.pk


def test_a_membership_that_is_not_there_is_still_refused(practice):
    with transaction.atomic(), pytest.raises(Membership.DoesNotExist):
        sql.get_locked(Membership.objects.select_for_update(of=("self",)).select_related("tier"), 987654)
