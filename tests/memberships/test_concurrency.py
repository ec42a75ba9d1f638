"""On PostgreSQL, with real threads and real row locks: the last credit is spent exactly once, one
idempotency key makes exactly one entry (a redemption, a reversal) however many desks press at once,
and one member gets one membership however many desks enrol them."""

import pytest
from django.utils import timezone

from memberships import services
from memberships.errors import InsufficientBalance
from memberships.models import EntitlementBalance, LedgerEntry, Membership
from memberships.services import walk_in
from tests.factories import MemberFactory, active_membership

from .ledger_checks import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 50
PATHS = ["one call", "locked"]
SYSTEM = services.Actor.system()
NOW = timezone.now()


def _as_passed(membership, path, monkeypatch):
    """The membership as a caller passes it: loaded with its member and practice (the API, the staff
    pages: the one-call path), or bare (the locked path). The one-call path is counted, so the test
    proves it ran."""
    if path == "locked":
        return Membership.objects.get(pk=membership.pk), None
    calls = []
    real = walk_in._call
    monkeypatch.setattr(walk_in, "_call", lambda *a: calls.append(1) or real(*a))
    return Membership.objects.select_related("member__practice", "tier").get(pk=membership.pk), calls


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("attempt", range(3))
def test_fifty_desks_redeem_the_last_facial(glow, attempt, path, monkeypatch):
    tier, facial, _ = glow
    membership, calls = _as_passed(active_membership(tier=tier), path, monkeypatch)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.redeem_entitlement(
        membership=membership, service=facial, actor=services.Actor.system(), idempotency_key=f"desk-{attempt}-{i}",
        now=now))

    assert len(results) == 1
    assert len(errors) == THREADS - 1 and all(isinstance(e, InsufficientBalance) for e in errors), errors[:3]
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 0
    assert LedgerEntry.objects.filter(membership=membership, service=facial, kind="redeem").count() == 1
    assert calls is None or len(calls) == THREADS


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("attempt", range(3))
def test_fifty_replays_of_one_key_make_one_entry(glow, attempt, path, monkeypatch):
    tier, facial, credit = glow
    membership, calls = _as_passed(active_membership(tier=tier), path, monkeypatch)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.redeem_entitlement(
        membership=membership, service=credit, quantity=100, actor=services.Actor.system(),
        idempotency_key=f"one-click-{attempt}", now=now))

    assert errors == []
    assert len({entry.pk for entry in results}) == 1
    assert LedgerEntry.objects.filter(idempotency_key=f"one-click-{attempt}").count() == 1
    assert EntitlementBalance.objects.get(membership=membership, service=credit).balance == 4900
    assert calls is None or len(calls) == THREADS


def test_fifty_concurrent_refills_of_one_invoice_grant_once(glow):
    tier, facial, credit = glow
    membership = active_membership(tier=tier)
    now = timezone.now()

    results, errors = hammer(n=THREADS, fn=lambda i: services.refill_entitlements(
        membership=membership, cycle_key="in_same_invoice", actor=services.Actor.processor(), now=now))

    assert errors == []
    assert EntitlementBalance.objects.get(membership=membership, service=facial).balance == 2  # 1 carried + 1
    assert LedgerEntry.objects.filter(membership=membership, cycle_key="in_same_invoice").count() == 2


def test_concurrent_replay_of_last_unit_returns_first_entry(glow):
    """A replay of one key racing its twin on the last unit gets the first entry, never InsufficientBalance."""
    tier, facial, _ = glow
    fails = 0
    for attempt in range(10):
        m = active_membership(tier=tier)
        results, errors = hammer(lambda i: services.redeem_entitlement(
            membership=m, service=facial, actor=SYSTEM, idempotency_key=f"dbl-{attempt}", now=NOW), n=8)
        fails += len(errors)
    assert fails == 0, f"{fails} replays of an already-spent key answered InsufficientBalance"


def test_concurrent_replay_of_reverse_returns_first_reversal(glow):
    """Replays of one reversal racing each other get the first reversal, never AlreadyReversed."""
    tier, facial, _ = glow
    fails = 0
    for attempt in range(10):
        m = active_membership(tier=tier)
        e = services.redeem_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key=f"r-{attempt}",
                                        now=NOW)
        results, errors = hammer(lambda i: services.reverse_entry(
            entry=e, actor=SYSTEM, reason="oops", idempotency_key=f"rev-{attempt}", now=NOW), n=8)
        fails += len(errors)
    assert fails == 0, f"{fails} replays answered AlreadyReversed"


def test_two_enrolments_with_different_keys_give_domain_error(glow):
    """Two desks enrolling one member at once: one membership, the other desk a domain error."""
    tier, *_ = glow
    member = MemberFactory(practice=tier.practice)
    _, errors = hammer(lambda i: services.enroll_member(member=member, tier=tier, actor=SYSTEM,
                                                     idempotency_key=f"form-{i}", now=NOW), n=4)
    assert Membership.objects.filter(member=member).count() == 1
    assert {type(e).__name__ for e in errors} <= {"IllegalTransition"}, [repr(e)[:120] for e in errors]
