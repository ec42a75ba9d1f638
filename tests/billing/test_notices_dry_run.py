"""The notices ask what the next boundary would expire for a whole batch at once
(`preview_next_boundaries`); it must say exactly what the member page's one-at-a-time dry run says
(`preview_next_boundary` at the scheduled tier, else the tier) whatever the history: cycles refilled,
treatments and credit used, units on hold for a booking, a tier change scheduled, carry-over caps,
credit that expires after N cycles."""

from datetime import timedelta
from itertools import count

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memberships import services
from memberships.errors import LedgerError
from memberships.models import Membership, RolloverRule
from memberships.services.refill import preview_next_boundaries, preview_next_boundary

from ..factories import MemberFactory, PracticeFactory, ServiceFactory, TierBenefitFactory, TierFactory, \
    active_membership, glow_tier

pytestmark = pytest.mark.django_db
SYSTEM = services.Actor.system()
SERIAL = count()

STEP = st.one_of(
    st.tuples(st.just("refill"), st.just(0)),
    st.tuples(st.just("facial"), st.integers(1, 2)),
    st.tuples(st.just("credit"), st.integers(500, 6000)),
    st.tuples(st.just("toxin"), st.integers(5, 25)),
    st.tuples(st.just("hold"), st.integers(1, 2)),
    st.tuples(st.just("switch"), st.sampled_from(["now", "next_cycle"])),
)


def _catalogue():
    practice = PracticeFactory(slug=f"dry-run-{next(SERIAL)}")
    glow, facial, credit = glow_tier(practice)
    toxin = ServiceFactory(practice=practice, name="Neurotoxin", code="toxin", unit_value_cents=1200)
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    TierBenefitFactory(tier=luxe, service=facial, quantity_per_cycle=2, rollover=RolloverRule.CARRY_OVER,
                       rollover_cap=4)
    TierBenefitFactory(tier=luxe, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.EXPIRE_AFTER,
                       expire_after_cycles=3)
    return practice, {"glow": glow, "luxe": luxe}, {"facial": facial, "credit": credit, "toxin": toxin}


def _play(membership, steps, tiers, catalogue, start):
    now = start
    for i, (kind, value) in enumerate(steps):
        now += timedelta(days=3)
        key = f"{membership.pk}:{i}"
        membership.refresh_from_db()
        try:
            if kind == "refill":
                services.refill_entitlements(membership=membership, cycle_key=f"c:{key}", actor=SYSTEM, now=now)
            elif kind == "hold":
                services.reserve_entitlement(membership=membership, service=catalogue["facial"], quantity=value,
                                             actor=SYSTEM, idempotency_key=f"h:{key}", now=now)
            elif kind == "switch":
                other = tiers["luxe"] if membership.tier.code == "glow" else tiers["glow"]
                services.change_tier(membership=membership, new_tier=other, effective=value, actor=SYSTEM,
                                     idempotency_key=f"t:{key}", now=now)
            else:
                services.redeem_entitlement(membership=membership, service=catalogue[kind], quantity=value,
                                            actor=SYSTEM, idempotency_key=f"r:{key}", now=now)
        except LedgerError:
            pass                                # not allowed or not enough: the history goes on


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=st.lists(st.lists(STEP, max_size=10), min_size=1, max_size=3))
def test_the_batch_dry_run_says_what_the_member_page_says(histories):
    with transaction.atomic():
        practice, tiers, catalogue = _catalogue()
        start = timezone.now() - timedelta(days=120)
        memberships = []
        for steps in histories:
            membership = active_membership(tier=tiers["glow"], member=MemberFactory(practice=practice), now=start)
            _play(membership, steps, tiers, catalogue, start)
            memberships.append(membership)
        fresh = list(Membership.objects.filter(pk__in=[m.pk for m in memberships]))
        one_by_one = {m.pk: preview_next_boundary(membership=m, tier=m.pending_tier or m.tier) for m in fresh}
        assert preview_next_boundaries(memberships=fresh) == one_by_one
        transaction.set_rollback(True)
