"""Dunning walked through by moving the clock: each message, retry and state, as the member and the
front desk would see them."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from billing import dunning
from billing.models import (
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningMessage,
    MessageStatus,
)
from billing.dunning.policy import update_dunning_policy
from integrations.processors.dunning import RetryOutcome
from memberships import selectors, services
from memberships.errors import MembershipNotRedeemable
from memberships.models import AutomationStage, ChartFlag, Event, EventKind, MembershipStatus

from .conftest import T0, emails_to, fail, sms_to, tick, walk

LA = ZoneInfo("America/Los_Angeles")
DAY = timedelta(days=1)


def kinds(member):
    return list(Event.objects.filter(member=member).order_by("created_at", "id").values_list("kind", flat=True))


def refresh(obj):
    obj.refresh_from_db()
    return obj


def test_soft_decline_recovered_on_the_second_retry(membership, fake_processor):
    member = membership.member
    fake_processor.will_answer("in_1", RetryOutcome.failed("insufficient_funds"), RetryOutcome.succeeded())
    case = fail(membership)
    assert refresh(membership).status == MembershipStatus.PAST_DUE
    assert [f.text for f in selectors.open_chart_flags(member=member)] == [
        "Card declined — update card before treatment"]

    tick(T0)  # day 0: the failed charge itself; card-update SMS and email, no retry
    assert len(sms_to(member)) == 1 and len(emails_to(member)) == 1
    assert fake_processor.charges == []

    walk(T0 + timedelta(hours=1), T0 + 3 * DAY)  # day 3: retry 1 declines, then the SMS of step 1
    assert [a.status for a in DunningAttempt.objects.filter(case=case)] == [AttemptStatus.FAILED]
    assert len(sms_to(member)) == 2 and len(emails_to(member)) == 1
    assert refresh(case).status == DunningCaseStatus.OPEN

    walk(T0 + 3 * DAY + timedelta(hours=1), T0 + 14 * DAY)  # day 5: retry 2 pays; nothing after that
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and case.closed_at == T0 + 5 * DAY
    assert len(fake_processor.charges) == 2
    assert len({key for _, key in fake_processor.charges}) == 2
    assert len(sms_to(member)) == 2 and len(emails_to(member)) == 1  # the day-5 email was not needed
    assert refresh(membership).status == MembershipStatus.ACTIVE
    assert list(selectors.open_chart_flags(member=member)) == []
    timeline = kinds(member)
    for kind in (EventKind.DUNNING_OPENED, EventKind.PAST_DUE, EventKind.FLAGGED, EventKind.DUNNING_RETRY,
                 EventKind.DUNNING_ATTEMPT, EventKind.MESSAGE_SENT, EventKind.DUNNING_CLOSED,
                 EventKind.FLAG_CLEARED, EventKind.RECOVERED):
        assert kind in timeline
    assert timeline.count(EventKind.DUNNING_RETRY) == 2
    assert timeline.count(EventKind.MESSAGE_SENT) == 3
    opened = Event.objects.get(member=member, kind=EventKind.DUNNING_OPENED)
    assert opened.payload["policy_version"] == 1


def test_hard_decline_asks_for_a_new_card_and_never_retries(membership, fake_processor):
    member = membership.member
    case = fail(membership, code="lost_card")
    assert case.hard
    walk(T0, T0 + 14 * DAY)
    assert fake_processor.charges == []
    assert DunningAttempt.objects.filter(case=case).count() == 0
    bodies = [m.body for m in sms_to(member)] + [m.body for m in emails_to(member)]
    assert len(bodies) == 6  # the policy's messages: both, sms, email, both
    link_prefix = "https://ledger.example.com/billing/card/"
    assert all(link_prefix in body for body in bodies)
    assert refresh(case).status == DunningCaseStatus.EXHAUSTED


def test_member_without_sms_consent_gets_email_only(member_factory):
    membership = member_factory(sms_consent=False)
    member = membership.member
    fail(membership)
    walk(T0, T0 + 8 * DAY)
    assert sms_to(member) == []
    # Each of the four steps reaches the member once, by email (SMS-only steps fall back to email).
    assert len(emails_to(member)) == 4
    assert not DunningMessage.objects.filter(channel="sms").exists()


def test_stop_mid_case_stops_further_sms(membership, client, settings):
    from tests.support.twilio import post_signed

    member = membership.member
    fail(membership)
    tick(T0)
    assert len(sms_to(member)) == 1
    response = post_signed(client, "/webhooks/twilio/inbound/",
                           {"MessageSid": "SM_stop_1", "From": member.phone, "To": "+15005550006", "Body": "STOP"})
    assert response.status_code == 200
    assert refresh(member).sms_opted_out_at is not None
    walk(T0 + timedelta(hours=1), T0 + 14 * DAY)
    assert len(sms_to(member)) == 1  # nothing after STOP
    # The SMS-only step of day 3 went by email instead; day 5 email; day 7 email.
    assert len(emails_to(member)) == 4
    assert EventKind.SMS_OPTED_OUT in kinds(member)


def test_sms_due_in_quiet_hours_is_sent_at_eight(membership):
    member = membership.member
    late = T0.replace(hour=6, minute=30)  # 22:30 the evening before, in Los Angeles
    fail(membership, now=late)
    tick(late)
    assert sms_to(member) == [] and len(emails_to(member)) == 1  # email is not held back
    walk(late + timedelta(minutes=30), late + DAY, step=timedelta(minutes=30))
    sent = DunningMessage.objects.filter(channel="sms").order_by("sent_at")
    assert len(sms_to(member)) == 1
    assert sent[0].sent_at.astimezone(LA).strftime("%H:%M") == "08:00"
    assert sent[0].step.deferred_from == late


def test_duplicate_and_out_of_order_failure_webhooks_make_one_case(membership):
    member = membership.member
    second = fail(membership, code="insufficient_funds", now=T0 + timedelta(hours=2),
                  failed_at=T0 + timedelta(hours=1))
    first = fail(membership, code="generic_decline", now=T0 + timedelta(hours=3), failed_at=T0)
    again = fail(membership, code="insufficient_funds", now=T0 + timedelta(hours=4),
                 failed_at=T0 + timedelta(hours=1))
    assert second.pk == first.pk == again.pk
    case = DunningCase.objects.get()
    assert case.failure_count == 3
    assert case.decline_code == "insufficient_funds"  # the latest failure's, not the last to arrive
    assert kinds(member).count(EventKind.DUNNING_OPENED) == 1
    assert ChartFlag.objects.filter(member=member).count() == 1
    tick(T0 + timedelta(hours=4))
    assert len(sms_to(member)) == 1 and len(emails_to(member)) == 1


def test_payment_recovered_outside_our_retries(membership, fake_processor):
    member = membership.member
    case = fail(membership)
    walk(T0, T0 + 2 * DAY)
    # The member updated the card; the processor collected the invoice and told us.
    dunning.close_case_for_payment(invoice_ref="in_1", now=T0 + 2 * DAY + timedelta(minutes=5))
    dunning.close_case_for_payment(invoice_ref="in_1", now=T0 + 2 * DAY + timedelta(minutes=6))  # replay
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert list(selectors.open_chart_flags(member=member)) == []
    assert refresh(membership).status == MembershipStatus.ACTIVE
    walk(T0 + 2 * DAY, T0 + 14 * DAY, step=timedelta(hours=6))
    assert fake_processor.charges == []
    assert len(sms_to(member)) == 1 and len(emails_to(member)) == 1
    assert kinds(member).count(EventKind.FLAG_CLEARED) == 1


def test_exhausted_pauses_entitlements(membership, glow, fake_processor):
    _, facial, _ = glow
    member = membership.member
    case = fail(membership)
    walk(T0, T0 + 14 * DAY)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.EXHAUSTED and case.closed_at == T0 + 7 * DAY
    assert len(fake_processor.charges) == 3  # days 3, 5, 7
    assert refresh(membership).status == MembershipStatus.LAPSED
    with pytest.raises(MembershipNotRedeemable):
        services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                    idempotency_key="r-after-exhaust", now=T0 + 8 * DAY)
    # Still owed: the flag stays until the money comes in.
    assert [f.text for f in selectors.open_chart_flags(member=member)] == [
        "Card declined — update card before treatment"]
    dunning.close_case_for_payment(invoice_ref="in_1", now=T0 + 9 * DAY)
    assert refresh(membership).status == MembershipStatus.ACTIVE
    assert list(selectors.open_chart_flags(member=member)) == []
    assert refresh(case).status == DunningCaseStatus.EXHAUSTED


def test_exhausted_with_cancel_policy_cancels_the_membership(membership, dunning_practice):
    update_dunning_policy(practice=dunning_practice, changes={"exhausted_action": "cancel"},
                          actor=services.Actor.system(), now=T0 - DAY)
    fail(membership)
    walk(T0, T0 + 8 * DAY, step=timedelta(hours=6))
    assert refresh(membership).status == MembershipStatus.CANCELLED


def test_policy_edited_mid_case_leaves_the_open_case_alone(member_factory, dunning_practice, fake_processor):
    old = member_factory()
    case_old = fail(old, invoice="in_old")
    policy = update_dunning_policy(practice=dunning_practice,
                                   changes={"retry_offsets_days": [0, 2], "step_channels": ["email", "email"],
                                            "exhausted_action": "cancel"},
                                   actor=services.Actor.system(), now=T0 + timedelta(hours=1))
    assert policy.version == 2
    new = member_factory()
    case_new = fail(new, invoice="in_new", now=T0 + timedelta(hours=1))
    assert refresh(case_old).policy.version == 1 and case_new.policy.version == 2
    walk(T0, T0 + 10 * DAY)
    case_old.refresh_from_db(), case_new.refresh_from_db()
    assert case_new.closed_at == T0 + timedelta(hours=1) + 2 * DAY and case_new.status == DunningCaseStatus.EXHAUSTED
    assert case_old.closed_at == T0 + 7 * DAY and case_old.status == DunningCaseStatus.EXHAUSTED
    assert refresh(new).status == MembershipStatus.CANCELLED
    assert refresh(old).status == MembershipStatus.LAPSED
    assert len([c for c in fake_processor.charges if c[0] == "in_old"]) == 3
    assert len([c for c in fake_processor.charges if c[0] == "in_new"]) == 1


def test_below_the_dunning_stage_nothing_leaves(membership, dunning_practice, fake_processor):
    dunning_practice.automation_stage = AutomationStage.ALERTS
    dunning_practice.save()
    member = membership.member
    case = fail(membership)
    walk(T0, T0 + 8 * DAY, step=timedelta(hours=6))
    assert fake_processor.charges == [] and sms_to(member) == [] and emails_to(member) == []
    assert set(DunningMessage.objects.values_list("status", flat=True)) == {MessageStatus.SHADOWED}
    assert set(DunningAttempt.objects.values_list("status", flat=True)) == {AttemptStatus.SHADOWED}
    # The timeline says in plain words what did not happen and why, without the stage's code name.
    summary = Event.objects.filter(kind=EventKind.DUNNING_MESSAGE).first().summary
    assert "not sent" in summary and "automatic reminders are off for this practice" in summary
    assert "stage" not in summary and "dunning" not in summary
    retry = Event.objects.filter(kind=EventKind.DUNNING_RETRY).first().summary
    assert "not made" in retry and "automatic retries are off for this practice" in retry and "stage" not in retry
    # The chart flag is ours: it shows from the alerts stage on.
    assert ChartFlag.objects.filter(member=member).exists()
    assert refresh(case).status == DunningCaseStatus.EXHAUSTED


def test_a_retry_that_declines_hard_stops_the_schedule(membership, fake_processor):
    fake_processor.will_answer("in_1", RetryOutcome.failed("stolen_card"))
    case = fail(membership)
    walk(T0, T0 + 14 * DAY, step=timedelta(hours=3))
    assert len(fake_processor.charges) == 1
    assert refresh(case).hard and case.decline_code == "stolen_card"


def test_processor_down_retries_through_the_outbox_without_double_charging(membership, fake_processor):
    fake_processor.will_answer("in_1", RetryOutcome.succeeded())
    case = fail(membership)
    tick(T0)
    fake_processor.down = True
    walk(T0 + 3 * DAY, T0 + 3 * DAY + timedelta(hours=2), step=timedelta(hours=1))
    assert refresh(case).status == DunningCaseStatus.OPEN
    assert len(sms_to(membership.member)) == 1  # the step-1 SMS waits for its retry's answer
    fake_processor.down = False
    walk(T0 + 3 * DAY + timedelta(hours=3), T0 + 4 * DAY)
    assert refresh(case).status == DunningCaseStatus.RECOVERED
    assert len(fake_processor.charges) == 1


def test_messages_carry_nothing_clinical(membership, glow):
    tier, facial, credit = glow
    member = membership.member
    fail(membership)
    walk(T0, T0 + 8 * DAY, step=timedelta(hours=6))
    bodies = [m.body for m in sms_to(member)] + [m.body + m.subject for m in emails_to(member)]
    assert bodies
    for body in bodies:
        for word in (facial.name, credit.name, tier.processor_name, "$"):
            assert word.lower() not in body.lower()
        assert member.first_name in body
    sms_body = sms_to(member)[0].body
    assert sms_body.startswith(f"Hi {member.first_name}, the card on file for your Glow Aesthetics membership")


def test_membership_cancelled_meanwhile_stops_the_chase(membership):
    member = membership.member
    case = fail(membership)
    tick(T0)
    services.cancel_membership(membership=membership, actor=services.Actor.system(), idempotency_key="bye",
                               now=T0 + DAY)
    walk(T0 + DAY, T0 + 14 * DAY)
    assert refresh(case).status == DunningCaseStatus.CANCELLED
    assert len(sms_to(member)) == 1 and len(emails_to(member)) == 1
    assert list(selectors.open_chart_flags(member=member)) == []
