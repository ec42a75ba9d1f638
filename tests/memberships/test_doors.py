"""One door per staff change (issue 17): each service writes its own audit row — the staff member, the
address the actor carries, the member — in its own transaction, once: a replay writes nothing more and
says it was one (`.outcome`), a refusal writes nothing, and a change the system makes has no person to
audit. Called here without any page, so no view can be doing it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.dunning import open_case_for_failure
from billing.dunning.policy import update_dunning_policy
from billing.dunning.staff_actions import record_member_contacted
from billing.models import Discrepancy, ReconciliationRun
from billing.reconciliation.runs import resolve_discrepancy
from billing.rollout.stages import set_automation_stage
from integrations.models import RecordException, RecordExceptionKind
from integrations.records.exceptions import resolve_record_exception
from memberships import services
from memberships.errors import IllegalTransition
from memberships.models import AuditLog, AutomationStage
from memberships.services.lifecycle import enroll_new_member
from tests.factories import MemberFactory, active_membership

ADDRESS = "198.51.100.4"


@pytest.fixture
def desk(front_desk):
    return services.Actor.staff(front_desk, ip_address=ADDRESS)


def only_row(action):
    rows = list(AuditLog.objects.filter(action=action))
    assert len(rows) == 1, rows
    return rows[0]


def assert_audited(action, actor, member):
    row = only_row(action)
    assert (row.user_id, row.ip_address, row.member_id) == (actor.user.pk, ADDRESS, member.pk)
    return row


def test_the_lifecycle_doors_audit_once_and_say_a_replay(glow, desk):
    tier, *_ = glow
    now = timezone.now()
    member = MemberFactory(practice=tier.practice)
    first = services.enroll_member.outcome(member=member, tier=tier, actor=desk, idempotency_key="k-enroll", now=now)
    again = services.enroll_member.outcome(member=member, tier=tier, actor=desk, idempotency_key="k-enroll", now=now)
    assert (first.replayed, again.replayed, again.result.pk) == (False, True, first.result.pk)
    assert_audited("enroll", desk, member)
    membership = services.refill_entitlements(membership=first.result, cycle_key="in_1", actor=services.Actor.processor(),
                                              now=now)   # paid: active
    until = member.practice.local_date(now) + timedelta(days=20)
    for _ in range(2):
        services.pause_membership(membership=membership, until=until, actor=desk, idempotency_key="k-pause", now=now)
        services.resume_membership(membership=membership, actor=desk, idempotency_key="k-resume", now=now)
        services.cancel_membership(membership=membership, actor=desk, idempotency_key="k-cancel", now=now)
    for action in ("pause", "resume", "cancel"):
        assert_audited(action, desk, member)


def test_a_refused_change_audits_nothing(glow, desk):
    tier, *_ = glow
    membership = active_membership(tier=tier)
    with pytest.raises(IllegalTransition):
        services.resume_membership(membership=membership, actor=desk, idempotency_key="k-r", now=timezone.now())
    assert not AuditLog.objects.exists()


def test_a_system_change_has_no_person_to_audit(glow):
    tier, *_ = glow
    membership = active_membership(tier=tier)
    services.cancel_membership(membership=membership, actor=services.Actor.processor(), idempotency_key="k-c",
                               now=timezone.now())
    assert not AuditLog.objects.exists()


def test_a_new_member_is_registered_and_enrolled_through_one_door(glow, desk):
    tier, *_ = glow
    kwargs = dict(practice=tier.practice, first_name="Maya", last_name="Lopez", email="maya@example.com",
                  tier=tier, actor=desk, idempotency_key="staff:member:t1", now=timezone.now())
    done = enroll_new_member.outcome(**kwargs)
    assert enroll_new_member.outcome(**kwargs).replayed is True
    assert done.result.member.last_name == "Lopez"
    assert_audited("enroll", desk, done.result.member)


def test_a_tier_change_is_audited_by_its_door(glow, desk):
    tier, *_ = glow
    from tests.factories import TierFactory

    other = TierFactory(practice=tier.practice, code="luxe", name="Luxe", price_cents=34900, rank=3)
    membership = active_membership(tier=tier)
    services.change_tier(membership=membership, new_tier=other, effective="next_cycle", actor=desk,
                         idempotency_key="k-t", now=timezone.now())
    row = assert_audited("change_tier", desk, membership.member)
    assert row.detail == {"tier": other.pk, "effective": "next_cycle"}


def test_reversal_and_adjustment_audit_themselves(glow, front_desk, manager):
    tier, facial, credit = glow
    membership = active_membership(tier=tier)
    now = timezone.now()
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.staff(front_desk),
                                        idempotency_key="r-1", now=now)
    boss = services.Actor.staff(manager, ip_address=ADDRESS)
    for _ in range(2):
        services.reverse_entry(entry=entry, actor=boss, reason="Wrong member", idempotency_key="rv-1", now=now)
        services.adjust_balance(membership=membership, service=credit, quantity=500, reason="Goodwill", actor=boss,
                                idempotency_key="adj-1", now=now)
    assert_audited("reverse", boss, membership.member)
    assert_audited("adjust", boss, membership.member)
    assert services.reverse_entry.outcome(entry=entry, actor=boss, reason="Wrong member", idempotency_key="rv-1",
                                          now=now).replayed


def test_the_billing_doors_audit_with_the_actor(glow, manager, practice):
    tier, *_ = glow
    now = timezone.now()
    boss = services.Actor.staff(manager, ip_address=ADDRESS)
    membership = active_membership(tier=tier)
    case = open_case_for_failure(membership=membership, invoice_ref="in_1", amount_cents=19900, now=now)
    record_member_contacted(case=case, actor=boss, note="Called", now=now)
    assert_audited("dunning_contacted", boss, membership.member)
    update_dunning_policy(practice=practice, changes={"exhaust_after_days": 21}, actor=boss, now=now)
    assert only_row("dunning_policy_updated").ip_address == ADDRESS
    set_automation_stage(practice=practice, stage=AutomationStage.ALERTS, actor=boss, now=now)
    assert only_row("automation_stage_changed").ip_address == ADDRESS
    run = ReconciliationRun.objects.create(practice=practice, started_at=now)
    gap = Discrepancy.objects.create(practice=practice, fingerprint="f1", member=membership.member,
                                     kind="balance_mismatch", message="Balance differs", first_seen_run=run,
                                     last_seen_run=run, first_seen_at=now, last_seen_at=now)
    resolve_discrepancy(discrepancy=gap, actor=boss, note="Checked", now=now)
    assert_audited("discrepancy_resolved", boss, membership.member)


def test_resolving_a_record_exception_audits_in_the_service(glow, manager, practice):
    tier, facial, _ = glow
    member = active_membership(tier=tier).member
    row = RecordException.objects.create(practice=practice, member=member, service=facial, detail="Unknown service",
                                         kind=RecordExceptionKind.UNKNOWN_SERVICE, event_type="treatment.completed",
                                         appointment_ref="A-1", created_at=timezone.now())
    for _ in range(2):
        resolve_record_exception(record_exception=row, user=manager, note="Redeemed by hand", now=timezone.now(),
                                 ip_address=ADDRESS)
    assert_audited("record_exception_resolve", services.Actor.staff(manager), member)


def test_the_hold_doors_audit_once_and_a_record_hold_has_no_person(glow, desk):
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    holds = [services.reserve_entitlement(membership=membership, service=facial, actor=desk,
                                          idempotency_key="k-hold", now=now) for _ in range(2)]
    assert holds[0].pk == holds[1].pk
    assert_audited("hold", desk, membership.member)
    for _ in range(2):
        services.commit_reservation(reservation=holds[0], actor=desk, now=now)
    assert_audited("commit_hold", desk, membership.member)
    services.grant_opening_balance(membership=membership, service=facial, quantity=2, actor=services.Actor.system(),
                                   idempotency_key="k-open", now=now)
    second = services.reserve_entitlement(membership=membership, service=facial, actor=desk,
                                          idempotency_key="k-hold-2", now=now)
    for _ in range(2):
        services.release_reservation(reservation=second, actor=desk, now=now)
    assert_audited("release_hold", desk, membership.member)
    booked = services.reserve_entitlement(membership=membership, service=facial, actor=services.Actor.record("fhir"),
                                          idempotency_key="k-hold-record", now=now)
    assert booked.pk and AuditLog.objects.filter(action="hold").count() == 2
