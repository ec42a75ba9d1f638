"""The staged-rollout page: stages and their effects, the shadow log of the next stage, audited
moves (up one confirmed step at a time, back at any time), payback metrics week by week."""

from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from billing.metrics import payback_weeks
from billing.reconciliation.runs import run_reconciliation
from integrations import outbox
from memberships import services
from memberships.models import AuditLog, AutomationStage, Practice
from tests.factories import MemberFactory, active_membership

from .test_import import GOOD_CSV, run


def test_rollout_page_shows_what_the_next_stage_would_have_done(client, manager, glow, practice):
    practice.record_adapter = "webhook"
    practice.save(update_fields=["record_adapter"])
    tier = glow[0]
    member = MemberFactory(practice=practice)
    services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="enroll-1",
                           now=timezone.now())
    outbox.dispatch_due(now=timezone.now())
    client.force_login(manager)
    page = client.get(reverse("mirror:rollout")).content.decode()
    assert "Observe (read-only mirror)" in page and "current" in page
    assert 'What "Alerts (chart flags, staff alerts)" would have done in the last 30 days' in page
    assert "held back that this stage would have let through" in page
    assert "more held back for later stages" in page          # the processor's, for tier sync
    assert "Reconciliation has not run yet" in page
    assert "Payback, week by week" in page


def test_moving_up_needs_confirmation_one_step_at_a_time_and_back_is_always_allowed(client, manager, practice, glow):
    client.force_login(manager)
    url = reverse("mirror:rollout_stage")
    page = client.post(url, {"stage": AutomationStage.ALERTS}, follow=True).content.decode()
    assert "Tick the confirmation" in page
    assert Practice.objects.get(pk=practice.pk).automation_stage == AutomationStage.OBSERVE
    page = client.post(url, {"stage": AutomationStage.DUNNING, "confirm": "1"}, follow=True).content.decode()
    assert "Move up one stage at a time." in page
    client.post(url, {"stage": AutomationStage.ALERTS, "confirm": "1"})
    client.post(url, {"stage": AutomationStage.DUNNING, "confirm": "1"})
    assert Practice.objects.get(pk=practice.pk).automation_stage == AutomationStage.DUNNING
    client.post(url, {"stage": AutomationStage.OBSERVE})
    assert Practice.objects.get(pk=practice.pk).automation_stage == AutomationStage.OBSERVE
    moves = list(AuditLog.objects.filter(action="automation_stage_changed").order_by("id")
                 .values_list("detail__from", "detail__to"))
    assert moves == [("observe", "alerts"), ("alerts", "dunning"), ("dunning", "observe")]


def test_front_desk_cannot_change_the_stage(client, front_desk, practice):
    client.force_login(front_desk)
    assert client.post(reverse("mirror:rollout_stage"), {"stage": "alerts", "confirm": "1"}).status_code == 403
    assert Practice.objects.get(pk=practice.pk).automation_stage == AutomationStage.OBSERVE


def test_payback_counts_disputes_and_tier_change_billing_errors(glow, practice, manager):
    tier, facial, _ = glow
    now = timezone.make_aware(datetime(2026, 11, 20, 12, 0))
    membership = active_membership(tier=tier, now=now)
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                        idempotency_key="r1", now=now)
    services.reverse_entry(entry=entry, actor=services.Actor.staff(manager), reason="Member disputes it",
                           idempotency_key="rev1", now=now, dispute=True)
    run(practice, GOOD_CSV.replace("Glow,2024-03-05,$199.00", "Glow,2024-03-05,$179.00").encode())
    run_reconciliation(practice=practice, now=now, trigger="test")
    weeks = payback_weeks(practice_id=practice.pk, now=now, weeks=4)
    assert len(weeks) == 4 and weeks[-1].week_start.date().isoformat() == "2026-11-16"
    # found: the price mismatch, and the enrolled member the spreadsheet does not list
    assert (weeks[-1].disputes, weeks[-1].tier_billing_errors, weeks[-1].discrepancies_found) == (1, 1, 2)
    assert sum(w.disputes for w in weeks[:-1]) == 0
