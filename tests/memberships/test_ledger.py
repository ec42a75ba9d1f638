"""The ledger services, one behaviour each, as the front desk and the manager would see them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from memberships import services
from memberships.errors import (
    AlreadyReversed,
    IllegalTransition,
    InsufficientBalance,
    InvalidQuantity,
    InvalidTier,
    MembershipNotRedeemable,
    NotAllowed,
    ReasonRequired,
    ServiceNotIncluded,
)
from memberships.models import (
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    MembershipStatus,
    RedemptionWhenPastDue,
    RolloverRule,
)
from tests.factories import MemberFactory, ServiceFactory, TierBenefitFactory, TierFactory, active_membership

from .ledger_checks import assert_ledger_consistent, balance_of

SYSTEM = services.Actor.system()
NOW = timezone.now()


def refill(m, key, now=NOW):
    return services.refill_entitlements(membership=m, cycle_key=key, actor=services.Actor.processor(), now=now)


def redeem(m, service, key, quantity=1, now=NOW):
    return services.redeem_entitlement(membership=m, service=service, quantity=quantity, actor=SYSTEM,
                                       idempotency_key=key, now=now)


def counts():
    return LedgerEntry.objects.count(), Event.objects.count()


class TestEnrollAndRefill:
    def test_enrolment_is_pending_with_zero_balances_until_first_charge(self, glow):
        tier, facial, credit = glow
        member = MemberFactory(practice=tier.practice)
        m = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e1", now=NOW)
        assert m.status == MembershipStatus.PENDING
        assert balance_of(m, facial).balance == 0
        with pytest.raises(MembershipNotRedeemable):
            redeem(m, facial, "r1")
        m = refill(m, "inv_1")
        assert m.status == MembershipStatus.ACTIVE
        assert balance_of(m, facial).balance == 1 and balance_of(m, credit).balance == 5000
        assert Event.objects.filter(member=member, kind=EventKind.ENROLLED).count() == 1

    def test_enrol_replay_returns_the_first_membership(self, glow):
        tier, *_ = glow
        member = MemberFactory(practice=tier.practice)
        first = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e1", now=NOW)
        again = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e1", now=NOW)
        assert again.pk == first.pk
        with pytest.raises(IllegalTransition):
            services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e2", now=NOW)

    def test_refill_happens_once_per_cycle_key(self, glow):
        tier, facial, credit = glow
        m = active_membership(tier=tier, cycle_key="inv_a")
        before = counts()
        refill(m, f"inv_a:{m.member_id}")
        assert counts() == before
        assert balance_of(m, credit).balance == 5000

    def test_carry_over_is_capped(self, glow):
        tier, facial, credit = glow  # facial: 1/cycle, carries over up to 2
        m = active_membership(tier=tier)
        for n in range(2, 6):
            refill(m, f"inv_{n}", NOW + timedelta(days=30 * n))
        # carried 2 (the cap) + this cycle's 1
        assert balance_of(m, facial).balance == 3
        assert balance_of(m, credit).balance == 5000  # product credit: use it or lose it
        expired = LedgerEntry.objects.filter(membership=m, kind=EntryKind.EXPIRE)
        assert sum(e.quantity for e in expired.filter(service=facial)) == -2
        assert_ledger_consistent(m)

    def test_expire_after_n_cycles_consumes_oldest_lot_first(self, practice):
        botox = ServiceFactory(practice=practice, name="Neurotoxin units")
        tier = TierFactory(practice=practice)
        TierBenefitFactory(tier=tier, service=botox, quantity_per_cycle=20, rollover=RolloverRule.EXPIRE_AFTER,
                           expire_after_cycles=2)
        m = active_membership(tier=tier)
        refill(m, "inv_2", NOW + timedelta(days=30))
        assert balance_of(m, botox).balance == 40
        entry = redeem(m, botox, "r1", quantity=25, now=NOW + timedelta(days=31))
        takes = sorted((mv.lot.cycle_number, -mv.quantity) for mv in entry.movements.all())
        assert takes == [(1, 20), (2, 5)]
        refill(m, "inv_3", NOW + timedelta(days=60))  # cycle-1 lot is empty, cycle-2 lot still good
        assert balance_of(m, botox).balance == 35
        refill(m, "inv_4", NOW + timedelta(days=90))  # cycle-2 lot (15 left) expires now
        assert balance_of(m, botox).balance == 40
        assert_ledger_consistent(m)


class TestRedeem:
    def test_redeem_and_replay(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        first = redeem(m, facial, "desk-token-1")
        before = counts()
        again = redeem(m, facial, "desk-token-1")
        assert again.pk == first.pk and counts() == before
        assert balance_of(m, facial).balance == 0

    def test_insufficient_balance_writes_nothing(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        redeem(m, facial, "r1")
        before = counts()
        with pytest.raises(InsufficientBalance):
            redeem(m, facial, "r2")
        assert counts() == before

    @pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "2"])
    def test_bad_quantity_is_refused(self, glow, quantity):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        before = counts()
        with pytest.raises(InvalidQuantity):
            redeem(m, facial, "r1", quantity=quantity)
        assert counts() == before and balance_of(m, facial).balance == 1

    def test_service_not_in_tier_or_other_practice(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        laser = ServiceFactory(practice=tier.practice, name="Laser")
        foreign = ServiceFactory(name="Elsewhere")
        before = counts()
        with pytest.raises(ServiceNotIncluded):
            redeem(m, laser, "r1")
        with pytest.raises(ServiceNotIncluded):
            redeem(m, foreign, "r2")
        assert counts() == before

    def test_paused_and_cancelled_cannot_redeem(self, glow):
        tier, facial, _ = glow
        paused = active_membership(tier=tier)
        services.pause_membership(membership=paused, until=(NOW + timedelta(days=30)).date(), actor=SYSTEM,
                                  idempotency_key="p1", now=NOW)
        with pytest.raises(MembershipNotRedeemable):
            redeem(paused, facial, "r1")
        practice = tier.practice
        practice.frozen_credit_usable_until_period_end = False
        practice.save()
        cancelled = active_membership(tier=tier)
        services.cancel_membership(membership=cancelled, actor=SYSTEM, idempotency_key="c1", now=NOW)
        before = counts()
        with pytest.raises(MembershipNotRedeemable):
            redeem(cancelled, facial, "r2")
        assert counts() == before

    def test_past_due_follows_practice_policy(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        services.mark_past_due(membership=m, actor=SYSTEM, idempotency_key="pd", now=NOW)
        tier.practice.redemption_when_past_due = RedemptionWhenPastDue.BLOCK
        tier.practice.save()
        with pytest.raises(MembershipNotRedeemable):
            redeem(m, facial, "r1")
        tier.practice.redemption_when_past_due = RedemptionWhenPastDue.WARN
        tier.practice.save()
        assert redeem(m, facial, "r2").balance_after == 0

    def test_expiring_cycle_credit_is_spent_before_an_opening_balance(self, practice, manager):
        """A redemption spends this cycle's expiring credit before an imported balance that never expires."""
        laser = ServiceFactory(practice=practice, name="Laser", code="laser")
        tier = TierFactory(practice=practice, code="t", name="T", price_cents=100)
        TierBenefitFactory(tier=tier, service=laser, quantity_per_cycle=1, rollover=RolloverRule.NONE)
        member = MemberFactory(practice=practice)
        m = services.enroll_member(member=member, tier=tier, actor=SYSTEM, idempotency_key="e", now=NOW)
        services.grant_opening_balance(membership=m, service=laser, quantity=1, actor=SYSTEM,
                                       idempotency_key="open", now=NOW)
        m = refill(m, "inv_1", now=NOW + timedelta(seconds=1))
        services.redeem_entitlement(membership=m, service=laser, actor=SYSTEM, idempotency_key="r",
                                    now=NOW + timedelta(days=1))
        refill(m, "inv_2", now=NOW + timedelta(days=30))
        # member used 1 of 2 in cycle 1; the monthly one should have been the one spent, keeping the
        # imported one: 1 (import) + 1 (cycle 2) = 2
        assert EntitlementBalance.objects.get(membership=m, service=laser).balance == 2


class TestReservations:
    def test_hold_commit_release(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        refill(m, "inv_2", NOW + timedelta(days=30))  # 2 facials
        hold = services.reserve_entitlement(membership=m, service=facial, actor=SYSTEM,
                                            idempotency_key="appt-1", now=NOW, external_ref="appt-1")
        assert balance_of(m, facial).available == 1
        services.reserve_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key="appt-2", now=NOW)
        with pytest.raises(InsufficientBalance):
            services.reserve_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key="appt-3", now=NOW)
        with pytest.raises(InsufficientBalance):
            redeem(m, facial, "walk-in")
        entry = services.commit_reservation(reservation=hold, actor=SYSTEM, now=NOW)
        assert services.commit_reservation(reservation=hold, actor=SYSTEM, now=NOW).pk == entry.pk
        bal = balance_of(m, facial)
        assert (bal.balance, bal.reserved) == (1, 1)
        second = m.reservations.get(idempotency_key="appt-2")
        services.release_reservation(reservation=second, actor=SYSTEM, now=NOW)
        services.release_reservation(reservation=second, actor=SYSTEM, now=NOW)
        bal = balance_of(m, facial)
        assert (bal.balance, bal.reserved) == (1, 0)
        with pytest.raises(IllegalTransition):
            services.commit_reservation(reservation=second, actor=SYSTEM, now=NOW)
        assert_ledger_consistent(m)

    def test_a_hold_keeps_only_its_units_of_an_expiring_lot(self, glow):
        """At the boundary a use-it-or-lose-it lot keeps only its units on hold; the rest expires."""
        tier, facial, credit = glow  # credit: 5000c/cycle, rollover NONE
        m = active_membership(tier=tier)
        services.reserve_entitlement(membership=m, service=credit, quantity=1000, actor=SYSTEM,
                                     idempotency_key="hold-1", now=NOW)
        refill(m, "inv_2", now=NOW + timedelta(days=30))
        bal = EntitlementBalance.objects.get(membership=m, service=credit)
        assert_ledger_consistent(m)
        # expected: 1000 still held from last cycle + 5000 new = 6000; 4000 unheld should have expired
        assert bal.balance == 6000, bal.balance


class TestCorrections:
    def test_reverse_redemption_returns_the_unit_once(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        entry = redeem(m, facial, "r1")
        rev = services.reverse_entry(entry=entry, actor=SYSTEM, reason="Wrong member", idempotency_key="rev1",
                                     now=NOW, dispute=True)
        assert rev.quantity == 1 and rev.dispute
        assert balance_of(m, facial).balance == 1
        with pytest.raises(AlreadyReversed):
            services.reverse_entry(entry=entry, actor=SYSTEM, reason="again", idempotency_key="rev2", now=NOW)
        with pytest.raises(ReasonRequired):
            services.reverse_entry(entry=entry, actor=SYSTEM, reason=" ", idempotency_key="rev3", now=NOW)
        assert_ledger_consistent(m)

    def test_reversing_a_spent_grant_is_refused(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        grant = LedgerEntry.objects.get(membership=m, service=facial, kind=EntryKind.GRANT)
        redeem(m, facial, "r1")
        with pytest.raises(InsufficientBalance):
            services.reverse_entry(entry=grant, actor=SYSTEM, reason="charge refunded", idempotency_key="rv", now=NOW)
        assert balance_of(m, facial).balance == 0

    def test_adjust_needs_a_manager_and_a_reason(self, glow, manager, front_desk):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        with pytest.raises(NotAllowed):
            services.adjust_balance(membership=m, service=facial, quantity=1, actor=services.Actor.staff(front_desk),
                                    reason="goodwill", idempotency_key="a1", now=NOW)
        with pytest.raises(ReasonRequired):
            services.adjust_balance(membership=m, service=facial, quantity=1, actor=services.Actor.staff(manager),
                                    reason="", idempotency_key="a1", now=NOW)
        with pytest.raises(InsufficientBalance):
            services.adjust_balance(membership=m, service=facial, quantity=-2, actor=services.Actor.staff(manager),
                                    reason="fix", idempotency_key="a2", now=NOW)
        entry = services.adjust_balance(membership=m, service=facial, quantity=2, actor=services.Actor.staff(manager),
                                        reason="Goodwill after a missed appointment", idempotency_key="a3", now=NOW)
        assert entry.actor_user == manager and balance_of(m, facial).balance == 3
        assert_ledger_consistent(m)

    def test_entries_are_append_only(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        entry = redeem(m, facial, "r1")
        entry.reason = "edited"
        with pytest.raises(TypeError):
            entry.save()
        with pytest.raises(TypeError):
            entry.delete()
        with pytest.raises(TypeError):
            LedgerEntry.objects.filter(pk=entry.pk).update(reason="x")

    def test_reversal_after_frozen_expiry_expires_again(self, glow):
        """Credit reversed back after the frozen credit expired expires again."""
        tier, facial, credit = glow
        m = active_membership(tier=tier)
        e = services.redeem_entitlement(membership=m, service=credit, quantity=1000, actor=SYSTEM,
                                        idempotency_key="r", now=NOW)
        services.cancel_membership(membership=m, actor=SYSTEM, idempotency_key="c", now=NOW)
        later = NOW + timedelta(days=60)
        services.expire_frozen_balances(membership=m, actor=SYSTEM, now=later)
        services.reverse_entry(entry=e, actor=SYSTEM, reason="billing dispute", idempotency_key="rv", now=later)
        services.expire_frozen_balances(membership=m, actor=SYSTEM, now=later + timedelta(days=1))
        assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 0


class TestLifecycle:
    def test_change_tier_now_and_next_cycle(self, glow, practice):
        tier, facial, credit = glow
        luxe = TierFactory(practice=practice, name="Luxe", price_cents=34900)
        TierBenefitFactory(tier=luxe, service=facial, quantity_per_cycle=2, rollover=RolloverRule.NONE)
        m = active_membership(tier=tier)
        m = services.change_tier(membership=m, new_tier=luxe, effective="next_cycle", actor=SYSTEM,
                                 idempotency_key="t1", now=NOW)
        assert m.tier == tier and m.pending_tier == luxe
        m = refill(m, "inv_2", NOW + timedelta(days=30))
        assert m.tier == luxe and m.pending_tier is None
        # Luxe does not carry facials over: the carried one expired at the boundary, +2 new;
        # product credit is not in Luxe and expired too
        assert balance_of(m, facial).balance == 2 and balance_of(m, credit).balance == 0
        back = services.change_tier(membership=m, new_tier=tier, effective="now", actor=SYSTEM,
                                    idempotency_key="t2", now=NOW + timedelta(days=31))
        assert back.tier == tier
        with pytest.raises(InvalidTier):
            services.change_tier(membership=back, new_tier=tier, actor=SYSTEM, idempotency_key="t3", now=NOW)
        assert_ledger_consistent(m)

    def test_pause_blocks_refill_and_resume_restores(self, glow):
        tier, facial, _ = glow
        m = active_membership(tier=tier)
        m = services.pause_membership(membership=m, until=(NOW + timedelta(days=20)).date(), actor=SYSTEM,
                                      idempotency_key="p1", now=NOW)
        with pytest.raises(IllegalTransition):
            refill(m, "inv_2")
        m = services.resume_membership(membership=m, actor=SYSTEM, idempotency_key="p2", now=NOW)
        assert m.status == MembershipStatus.ACTIVE
        assert refill(m, "inv_2").cycle_number == 2

    def test_cancel_freezes_and_frozen_credit_usable_until_period_end(self, glow):
        tier, facial, credit = glow
        m = active_membership(tier=tier)
        m.current_period_end = NOW + timedelta(days=10)
        m.save(update_fields=["current_period_end"])
        m = services.cancel_membership(membership=m, actor=SYSTEM, idempotency_key="c1", now=NOW, reason="Moving")
        assert m.status == MembershipStatus.CANCELLED and m.paid_through == NOW + timedelta(days=10)
        freezes = LedgerEntry.objects.filter(membership=m, kind=EntryKind.FREEZE)
        assert {(f.service_id, f.frozen_quantity) for f in freezes} == {(facial.pk, 1), (credit.pk, 5000)}
        assert balance_of(m, facial).frozen_at is not None
        redeem(m, credit, "r1", quantity=1000, now=NOW + timedelta(days=1))  # still within the paid period
        with pytest.raises(MembershipNotRedeemable):
            redeem(m, facial, "r2", now=NOW + timedelta(days=11))
        expired = services.expire_frozen_balances(membership=m, actor=SYSTEM, now=NOW + timedelta(days=11))
        assert expired == 1 + 4000 and balance_of(m, credit).balance == 0
        with pytest.raises(IllegalTransition):
            services.cancel_membership(membership=m, actor=SYSTEM, idempotency_key="c2", now=NOW)
        assert_ledger_consistent(m)

    def test_billing_transitions(self, glow):
        tier, *_ = glow
        m = active_membership(tier=tier)
        m = services.mark_past_due(membership=m, actor=SYSTEM, idempotency_key="f1", now=NOW)
        assert services.mark_past_due(membership=m, actor=SYSTEM, idempotency_key="f1", now=NOW).status == "past_due"
        m = services.mark_lapsed(membership=m, actor=SYSTEM, idempotency_key="l1", now=NOW)
        m = services.mark_recovered(membership=m, actor=SYSTEM, idempotency_key="ok1", now=NOW)
        assert m.status == MembershipStatus.ACTIVE
        with pytest.raises(IllegalTransition):
            services.mark_lapsed(membership=m, actor=SYSTEM, idempotency_key="l2", now=NOW)
        kinds = list(Event.objects.filter(membership=m).values_list("kind", flat=True))
        for kind in (EventKind.PAST_DUE, EventKind.LAPSED, EventKind.RECOVERED):
            assert kinds.count(kind) == 1

    def test_scheduled_downgrade_can_be_withdrawn(self, glow):
        """Choosing the current tier again withdraws a scheduled change."""
        tier, facial, credit = glow
        lite = TierFactory(practice=tier.practice, code="lite", name="Lite", price_cents=9900)
        m = active_membership(tier=tier)
        services.change_tier(membership=m, new_tier=lite, effective="next_cycle", actor=SYSTEM,
                             idempotency_key="c1", now=NOW)
        m = services.change_tier(membership=m, new_tier=tier, effective="next_cycle", actor=SYSTEM,
                                 idempotency_key="c2", now=NOW)
        assert m.pending_tier is None
        assert refill(m, "inv_2", now=NOW + timedelta(days=30)).tier == tier

    def test_carried_units_obey_a_cap_after_moving_to_use_it_or_lose_it(self, glow):
        """After a move to a tier that does not carry a service over, carried units expire at the boundary."""
        tier, facial, credit = glow  # facial: carry over, cap 2
        basic = TierFactory(practice=tier.practice, code="basic", name="Basic", price_cents=9900)
        TierBenefitFactory(tier=basic, service=facial, quantity_per_cycle=1, rollover=RolloverRule.NONE)
        m = active_membership(tier=tier)
        for i in range(2, 4):
            services.refill_entitlements(membership=m, cycle_key=f"inv_{i}", actor=SYSTEM,
                                         now=NOW + timedelta(days=30 * i))
        assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 3  # cap 2 + 1
        services.change_tier(membership=m, new_tier=basic, effective="next_cycle", actor=SYSTEM, idempotency_key="c",
                             now=NOW)
        for i in range(4, 10):
            services.refill_entitlements(membership=m, cycle_key=f"inv_{i}", actor=SYSTEM,
                                         now=NOW + timedelta(days=30 * i))
        bal = EntitlementBalance.objects.get(membership=m, service=facial).balance
        assert bal == 1, bal  # Basic does not carry facials over: only this cycle's one


class TestTierVersions:
    def test_new_version_keeps_existing_members_on_their_price(self, glow):
        tier, facial, credit = glow
        m = active_membership(tier=tier)
        v2 = services.new_tier_version(tier=tier, price_cents=21900, now=NOW)
        tier.refresh_from_db()
        assert (v2.version, v2.price_cents, v2.active, tier.active) == (2, 21900, True, False)
        assert {(b.service_id, b.quantity_per_cycle) for b in v2.benefits.all()} == {(facial.pk, 1), (credit.pk, 5000)}
        m.refresh_from_db()
        assert m.tier == tier and m.tier.price_cents == 19900
        with pytest.raises(InvalidTier):  # retired versions are not sold
            services.enroll_member(member=MemberFactory(practice=tier.practice), tier=tier, actor=SYSTEM,
                                   idempotency_key="e-old", now=NOW)
        moved = services.change_tier(membership=m, new_tier=v2, effective="next_cycle", actor=SYSTEM,
                                     idempotency_key="to-v2", now=NOW)
        assert moved.pending_tier == v2

    def test_admin_locks_price_of_a_tier_members_hold(self, client, manager, glow):
        tier, *_ = glow
        active_membership(tier=tier)
        client.force_login(manager)
        page = client.get(f"/admin/memberships/tier/{tier.pk}/change/")
        assert page.status_code == 200 and b'name="price_cents"' not in page.content
        client.post("/admin/memberships/tier/", {"action": "make_new_version", "_selected_action": [tier.pk]})
        assert tier.practice.tiers.filter(code=tier.code, version=2, active=True).exists()
