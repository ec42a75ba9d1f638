"""The manager's dashboard (metrics and charts) and the dunning queue."""

import datetime

import pytest
from django.urls import reverse

from billing import metrics
from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from memberships import services
from memberships.models import AuditLog, Event, EventKind, Membership, MembershipStatus, RolloverRule
from tests.factories import TierBenefitFactory, TierFactory, active_membership

DAY = datetime.timedelta(days=1)


def _facts(cls, membership, ref, amount, *, now, attempt=1, **extra):
    return cls(processor="stripe", invoice_ref=ref, subscription_ref="", customer_ref="",
               membership_ref=billing.membership_ref_for(membership), amount_cents=amount, currency="usd",
               attempt_count=attempt, period_start=None, period_end=None, created=int(now.timestamp()),
               event_created=int(now.timestamp()) + attempt, billing_reason="subscription_cycle", **extra)


def fail(membership, ref, amount, *, now, attempt=1, hard=False):
    return billing.record_charge_failed(
        charge=_facts(ChargeFailed, membership, ref, amount, now=now, attempt=attempt, hard=hard,
                      decline_code="stolen_card" if hard else "insufficient_funds",
                      next_payment_attempt=None if hard else now + 3 * DAY), now=now)


def pay(membership, ref, amount, *, now):
    return billing.record_charge_succeeded(charge=_facts(ChargeSucceeded, membership, ref, amount, now=now,
                                                         amount_paid_cents=amount, paid_at=now), now=now)


@pytest.fixture
def history(glow, now):
    """Three Glow members who joined 100 days ago; one cancelled 40 days ago; one card failed twice
    and was recovered, another failed hard and is still open; one disputed redemption; one expiry."""
    tier, facial, credit = glow
    start = now - 100 * DAY
    a, b, c = (active_membership(tier=tier, now=start) for _ in range(3))
    services.cancel_membership(membership=c, actor=services.Actor.system(), idempotency_key="c-cancel",
                               now=now - 40 * DAY)
    fail(a, "in_a1", 19900, now=now - 20 * DAY)
    fail(a, "in_a1", 19900, now=now - 17 * DAY, attempt=2)
    pay(a, "in_a1", 19900, now=now - 15 * DAY)
    fail(b, "in_b1", 19900, now=now - 2 * DAY, hard=True)
    entry = services.redeem_entitlement(membership=a, service=facial, actor=services.Actor.system(),
                                        idempotency_key="r1", now=now - 5 * DAY)
    services.reverse_entry(entry=entry, actor=services.Actor.system(), reason="disputed", dispute=True,
                           idempotency_key="rv1", now=now - 4 * DAY)
    services.redeem_entitlement(membership=a, service=credit, quantity=1000, actor=services.Actor.system(),
                                idempotency_key="r2", now=now - 3 * DAY)
    return {"tier": tier, "facial": facial, "credit": credit, "a": a, "b": b, "c": c}


def _week_of(weeks, moment):
    return [w for w in weeks if w.week_start <= moment][-1]


def test_failed_vs_recovered_counts_each_invoice_once(history, practice, now):
    fr = metrics.failed_vs_recovered(practice_id=practice.pk, now=now)
    assert (fr.failed_count, fr.recovered_count, fr.open_count) == (2, 1, 1)
    assert sum(fr.failed_cents) == 39800 and sum(fr.recovered_cents) == 19900 and fr.open_cents == 19900


def test_members_and_mrr_over_time(history, practice, now):
    series = metrics.members_by_tier_over_time(practice_id=practice.pk, now=now, months=6)
    glow = series.tiers[0]
    assert glow.name == "Glow"
    assert series.total_members[-1] == 2  # a (active) and b (past due); c cancelled
    assert max(series.total_members) == 3  # all three before the cancellation
    assert series.total_mrr_cents[-1] == 2 * 19900


def test_tier_history_is_replayed(glow, practice, now):
    tier, facial, _ = glow
    rich = TierFactory(practice=practice, code="rad", name="Radiance", price_cents=29900, rank=2)
    TierBenefitFactory(tier=rich, service=facial, quantity_per_cycle=2, rollover=RolloverRule.NONE)
    m = active_membership(tier=tier, now=now - 70 * DAY)
    services.change_tier(membership=m, new_tier=rich, effective="now", actor=services.Actor.system(),
                         idempotency_key="t", now=now - 10 * DAY)
    series = metrics.members_by_tier_over_time(practice_id=practice.pk, now=now, months=4)
    by_name = {t.name: t.members for t in series.tiers}
    assert by_name["Radiance"][-1] == 1 and by_name["Glow"][-1] == 0
    assert by_name["Glow"][-3] == 1 and by_name["Radiance"][-3] == 0


def test_redemptions_liability_breakage_and_disputes(history, practice, now):
    redemptions = {r.name: r for r in metrics.redemptions_per_service(practice_id=practice.pk, now=now)}
    assert redemptions["HydraFacial"].quantity == 0  # redeemed, then reversed on dispute
    assert redemptions["Product credit"].quantity == 1000
    liability = metrics.credit_liability(practice_id=practice.pk)
    by_name = {s.name: s for s in liability.services}
    assert by_name["HydraFacial"].value_cents == 3 * 25000  # a: 1 + the recovered cycle's 1 (carries over); b: 1
    assert by_name["Product credit"].value_cents == 4000 + 5000
    assert liability.frozen_cents == 25000 + 5000  # c's frozen balance
    weeks = metrics.payback_weeks(practice_id=practice.pk, now=now)
    assert len(weeks) == 8
    # two failed invoices (a's failed twice: one case), a's recovered; b's still open
    assert sum(w.failed_payments for w in weeks) == 2
    assert (sum(w.failed_addressed for w in weeks), sum(w.failed_recovered for w in weeks)) == (1, 1)
    assert [w.hours_to_address for w in weeks if w.failed_addressed] == [5 * 24.0]
    assert sum(w.disputes for w in weeks) == 1
    assert _week_of(weeks, now - 4 * DAY).disputes == 1


def test_breakage_counts_expired_credit(glow, practice, now):
    tier, facial, credit = glow
    m = active_membership(tier=tier, now=now - 40 * DAY)
    services.refill_entitlements(membership=m, cycle_key="in_2", actor=services.Actor.processor(), now=now - DAY)
    breakage = metrics.breakage_by_month(practice_id=practice.pk, now=now)
    assert breakage.total_cents == 5000  # last cycle's unused $50 product credit expired


def test_dashboard_renders_svg_charts(client, manager, history):
    client.force_login(manager)
    response = client.get(reverse("manager:dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 6
    assert "Active members by tier" in html and "Failed vs recovered" in html
    assert "<script src=\"http" not in html  # nothing from a CDN


def test_dashboard_with_no_data(client, manager):
    client.force_login(manager)
    response = client.get(reverse("manager:dashboard"))
    assert response.status_code == 200 and b"No data yet" in response.content


def test_dunning_queue_lists_open_cases(client, manager, history):
    client.force_login(manager)
    response = client.get(reverse("manager:dunning"))
    rows = response.context["rows"]
    assert [r.membership_id for r in rows] == [history["b"].pk]  # a was recovered: its case closed
    assert rows[0].amount_cents == 19900 and rows[0].hard
    html = response.content.decode()
    assert "$199.00" in html and "hard decline" in html


def test_resend_card_link_queues_the_messages(client, manager, history):
    from billing.models import DunningCase, DunningMessage

    case = DunningCase.objects.get(membership=history["b"])
    before = DunningMessage.objects.filter(case=case).count()
    client.force_login(manager)
    response = client.post(reverse("manager:resend_card_link", args=[case.pk]), follow=True)
    assert b"Card-update link queued" in response.content
    assert DunningMessage.objects.filter(case=case).count() > before
    assert AuditLog.objects.filter(action="dunning_card_link_resent", member=case.member).exists()


def test_mark_contacted_notes_the_timeline(client, manager, history):
    from billing.models import DunningCase

    case = DunningCase.objects.get(membership=history["b"])
    client.force_login(manager)
    response = client.post(reverse("manager:mark_contacted", args=[case.pk]), {"note": "left a voicemail"},
                           follow=True)
    assert b"contacted" in response.content
    assert Event.objects.filter(member=case.member, kind=EventKind.DUNNING,
                                summary="Member contacted: left a voicemail").count() == 1
    assert AuditLog.objects.filter(action="dunning_contacted", member=case.member).exists()
    case.refresh_from_db()
    assert case.last_contacted_at is not None


def test_dunning_actions_on_a_closed_case_are_refused(client, manager, history):
    from billing.models import DunningCase

    closed = DunningCase.objects.get(membership=history["a"])
    client.force_login(manager)
    response = client.post(reverse("manager:resend_card_link", args=[closed.pk]), follow=True)
    assert b"case is closed" in response.content


def test_metrics_stay_within_a_practice(history, now):
    from tests.factories import PracticeFactory, glow_tier

    other = PracticeFactory(slug="other")
    tier, *_ = glow_tier(other)
    active_membership(tier=tier, now=now - 50 * DAY)
    series = metrics.members_by_tier_over_time(practice_id=other.pk, now=now, months=3)
    assert series.total_members[-1] == 1
    assert metrics.failed_vs_recovered(practice_id=other.pk, now=now).failed_count == 0
    assert Membership.objects.filter(status=MembershipStatus.PAST_DUE).count() == 1
