"""Property tests: random sequences of ledger operations never break the invariants — the balance
equals the sum of its entries and of its open lots, never goes negative, and replays are no-ops."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from memberships import services
from memberships.errors import LedgerError
from memberships.models import EntitlementBalance, Event, LedgerEntry, MembershipStatus, Reservation
from tests.factories import PracticeFactory, glow_tier, staff_user
from memberships.roles import MANAGER

from .ledger_checks import assert_ledger_consistent

SYSTEM = services.Actor.system()


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.practice = PracticeFactory()
        self.tier, self.facial, self.credit = glow_tier(self.practice)
        self.manager = staff_user(MANAGER, self.practice, username=f"mgr-{self.practice.pk}")
        from tests.factories import MemberFactory

        member = MemberFactory(practice=self.practice)
        self.now = timezone.now()
        self.membership = services.enroll_member(member=member, tier=self.tier, actor=SYSTEM,
                                                 idempotency_key=f"enroll-{member.pk}", now=self.now)
        self.cycle = 0
        self.keys = []
        self.entries_done = []
        self.holds = []
        self.n = 0

    def _key(self, prefix):
        self.n += 1
        return f"{prefix}-{self.practice.pk}-{self.n}"

    def _try(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except LedgerError:
            return None

    @property
    def m(self):
        self.membership.refresh_from_db()
        return self.membership

    def _service(self, which):
        return self.facial if which else self.credit

    @rule(days=st.integers(1, 40))
    def refill(self, days):
        self.now += timedelta(days=days)
        self.cycle += 1
        self._try(services.refill_entitlements, membership=self.m, cycle_key=f"inv-{self.practice.pk}-{self.cycle}",
                  actor=SYSTEM, now=self.now)

    @rule(which=st.booleans(), quantity=st.integers(-2, 3000))
    def redeem(self, which, quantity):
        key = self._key("redeem")
        entry = self._try(services.redeem_entitlement, membership=self.m, service=self._service(which),
                          quantity=quantity, actor=SYSTEM, idempotency_key=key, now=self.now)
        if entry is not None:
            self.keys.append((key, which, quantity))
            self.entries_done.append(entry)

    @precondition(lambda self: self.keys)
    @rule(data=st.data())
    def replay(self, data):
        key, which, quantity = data.draw(st.sampled_from(self.keys))
        before = (LedgerEntry.objects.count(), Event.objects.count(),
                  list(EntitlementBalance.objects.values_list("balance", "reserved").order_by("pk")))
        services.redeem_entitlement(membership=self.m, service=self._service(which), quantity=quantity, actor=SYSTEM,
                                    idempotency_key=key, now=self.now)
        after = (LedgerEntry.objects.count(), Event.objects.count(),
                 list(EntitlementBalance.objects.values_list("balance", "reserved").order_by("pk")))
        assert before == after

    @rule(which=st.booleans(), quantity=st.integers(1, 2))
    def reserve(self, which, quantity):
        hold = self._try(services.reserve_entitlement, membership=self.m, service=self._service(which),
                         quantity=quantity, actor=SYSTEM, idempotency_key=self._key("hold"), now=self.now)
        if hold is not None:
            self.holds.append(hold)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), commit=st.booleans())
    def resolve_hold(self, data, commit):
        hold = data.draw(st.sampled_from(self.holds))
        hold = Reservation.objects.get(pk=hold.pk)
        if commit:
            entry = self._try(services.commit_reservation, reservation=hold, actor=SYSTEM, now=self.now)
            if entry is not None:
                self.entries_done.append(entry)
        else:
            self._try(services.release_reservation, reservation=hold, actor=SYSTEM, now=self.now)

    @precondition(lambda self: self.entries_done)
    @rule(data=st.data(), dispute=st.booleans())
    def reverse(self, data, dispute):
        entry = data.draw(st.sampled_from(self.entries_done))
        self._try(services.reverse_entry, entry=entry, actor=SYSTEM, reason="property test",
                  idempotency_key=self._key("rev"), now=self.now, dispute=dispute)

    @rule(which=st.booleans(), quantity=st.integers(-3000, 3000))
    def adjust(self, which, quantity):
        self._try(services.adjust_balance, membership=self.m, service=self._service(which), quantity=quantity,
                  actor=services.Actor.staff(self.manager), reason="property test",
                  idempotency_key=self._key("adj"), now=self.now)

    @rule()
    def pause_or_resume(self):
        m = self.m
        if m.status == MembershipStatus.PAUSED:
            self._try(services.resume_membership, membership=m, actor=SYSTEM, idempotency_key=self._key("res"),
                      now=self.now)
        else:
            self._try(services.pause_membership, membership=m, until=(self.now + timedelta(days=30)).date(),
                      actor=SYSTEM, idempotency_key=self._key("pause"), now=self.now)

    @precondition(lambda self: self.cycle > 2)
    @rule()
    def cancel(self):
        self._try(services.cancel_membership, membership=self.m, actor=SYSTEM, idempotency_key=self._key("cancel"),
                  now=self.now)

    @invariant()
    def ledger_is_consistent(self):
        if hasattr(self, "membership"):
            assert_ledger_consistent(self.membership)


@pytest.mark.django_db
def test_random_operation_sequences_keep_the_ledger_consistent():
    LedgerMachine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    LedgerMachine.TestCase().runTest()
