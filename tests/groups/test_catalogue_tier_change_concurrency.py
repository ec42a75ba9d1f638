"""On PostgreSQL, with real threads: desks changing one member's tier at once (each to another tier, at
its location's price) all get an answer, none an error page; the timeline's changes form one chain
(each from the tier the previous one went to), and the membership ends on the last one's tier at the
price its event names."""

from __future__ import annotations

import pytest
from django.utils import timezone

from memberships import services
from memberships.errors import LedgerError
from memberships.models import Event, EventKind, Location, Membership, TierLocationPrice
from memberships.services.location_prices import membership_price
from tests.factories import MemberFactory, TierFactory
from tests.memberships.ledger_checks import hammer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 9


def test_tier_changes_from_many_desks_at_once_keep_one_chain(practice, glow, manager):
    south = Location.objects.create(practice=practice, name="South")
    tiers = [TierFactory(practice=practice, code=f"t{i}", name=f"T{i}", price_cents=10000 * (i + 1)) for i in range(3)]
    for tier in tiers:
        TierLocationPrice.objects.create(tier=tier, location=south, price_cents=tier.price_cents - 100)
    membership = services.enroll_member(member=MemberFactory(practice=practice, home_location=south), tier=glow[0],
                                        actor=services.Actor.system(), idempotency_key="e", now=timezone.now())

    def change(i):
        services.change_tier(membership=Membership.objects.get(pk=membership.pk), new_tier=tiers[i % 3],
                             effective="now", actor=services.Actor.staff(manager), idempotency_key=f"k{i}",
                             now=timezone.now())
        return "changed"

    results, errors = hammer(change, THREADS)
    assert [e for e in errors if not isinstance(e, LedgerError)] == []     # refusals only, no crash
    changes = list(Event.objects.filter(membership=membership, kind=EventKind.TIER_CHANGED).order_by("id")
                   .values_list("payload__old_tier_id", "payload__new_tier_id", "payload__price_cents"))
    assert len(changes) == results.count("changed") >= 2
    assert changes[0][0] == glow[0].pk
    assert all(earlier[1] == later[0] for earlier, later in zip(changes, changes[1:]))
    final = Membership.objects.get(pk=membership.pk)
    assert final.tier_id == changes[-1][1] and membership_price(final).cents == changes[-1][2]
