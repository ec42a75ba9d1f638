"""Units that come back after the cycle boundary that would have expired them — a hold released on
a no-show, a redemption reversed — expire then, by the rule the boundary ran. A manager reversing
an expiry keeps the units (a deliberate correction)."""

from datetime import datetime, timedelta, timezone as dt_timezone

from memberships import services
from memberships.models import EntitlementBalance, EntryKind, LedgerEntry, RolloverRule
from tests.factories import MemberFactory, ServiceFactory, TierBenefitFactory, TierFactory

T0 = datetime(2026, 2, 2, 18, 0, tzinfo=dt_timezone.utc)
SYSTEM = services.Actor.system()


def _essentials(practice):
    """Essentials: one dermaplaning per cycle, use it or lose it."""
    derma = ServiceFactory(practice=practice, name="Dermaplaning", code="derma")
    tier = TierFactory(practice=practice, code="essentials", name="Essentials", price_cents=9900)
    TierBenefitFactory(tier=tier, service=derma, quantity_per_cycle=1, rollover=RolloverRule.NONE)
    member = MemberFactory(practice=practice)
    m = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="enroll", now=T0)
    m = services.refill_entitlements(membership=m, cycle_key="in_1", actor=SYSTEM, now=T0)
    return m, derma


def _balance(m, service):
    row = EntitlementBalance.objects.get(membership=m, service=service)
    return row.balance, row.reserved


def test_a_hold_released_after_the_boundary_does_not_bring_last_cycles_unit_back(practice):
    m, derma = _essentials(practice)
    hold = services.reserve_entitlement(membership=m, service=derma, actor=SYSTEM, idempotency_key="book",
                                        now=T0 + timedelta(days=25))
    m = services.refill_entitlements(membership=m, cycle_key="in_2", actor=SYSTEM, now=T0 + timedelta(days=30))
    assert _balance(m, derma) == (2, 1)          # the held unit survived the boundary, as it must
    services.release_reservation(reservation=hold, actor=SYSTEM, now=T0 + timedelta(days=32), reason="No-show")
    services.release_reservation(reservation=hold, actor=SYSTEM, now=T0 + timedelta(days=33), reason="No-show")
    assert _balance(m, derma) == (1, 0)          # this cycle's unit only
    assert LedgerEntry.objects.filter(membership=m, kind=EntryKind.EXPIRE).count() == 1


def test_a_hold_released_in_its_own_cycle_gives_the_unit_back(practice):
    m, derma = _essentials(practice)
    hold = services.reserve_entitlement(membership=m, service=derma, actor=SYSTEM, idempotency_key="book",
                                        now=T0 + timedelta(days=5))
    services.release_reservation(reservation=hold, actor=SYSTEM, now=T0 + timedelta(days=6))
    assert _balance(m, derma) == (1, 0)
    assert not LedgerEntry.objects.filter(membership=m, kind=EntryKind.EXPIRE).exists()


def test_a_redemption_reversed_after_the_boundary_expires_again(practice):
    m, derma = _essentials(practice)
    spent = services.redeem_entitlement(membership=m, service=derma, actor=SYSTEM, idempotency_key="r",
                                        now=T0 + timedelta(days=10))
    m = services.refill_entitlements(membership=m, cycle_key="in_2", actor=SYSTEM, now=T0 + timedelta(days=30))
    services.reverse_entry(entry=spent, actor=SYSTEM, reason="Charged by mistake", idempotency_key="rev",
                           now=T0 + timedelta(days=32))
    assert _balance(m, derma) == (1, 0)
    kinds = list(LedgerEntry.objects.filter(membership=m).order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == [EntryKind.REVERSE, EntryKind.EXPIRE]
    assert sum(LedgerEntry.objects.filter(membership=m, service=derma).values_list("quantity", flat=True)) == 1


def test_a_reversed_expiry_keeps_its_units(practice):
    m, derma = _essentials(practice)
    m = services.refill_entitlements(membership=m, cycle_key="in_2", actor=SYSTEM, now=T0 + timedelta(days=30))
    expiry = LedgerEntry.objects.get(membership=m, kind=EntryKind.EXPIRE)
    services.reverse_entry(entry=expiry, actor=SYSTEM, reason="Goodwill: missed visit was our fault",
                           idempotency_key="rev-exp", now=T0 + timedelta(days=31))
    assert _balance(m, derma) == (2, 0)
