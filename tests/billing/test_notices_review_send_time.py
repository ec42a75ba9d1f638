"""A notice says what is true when it leaves, not what was true when it was planned. Notices are
planned at night and wait for the end of the member's quiet hours; in between, the member may change
tier, pause, cancel, be moved to another price, or use her credit. The upcoming-charge notice names
the amount the renewal will charge then (or is withdrawn, saying why, when nothing will be charged),
and a notice withdrawn while it did not apply goes once it applies again before the renewal."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.core import mail

from billing.models import ChannelStatus, MemberNotice, NoticeKind, NoticeStatus
from integrations.messaging import sms
from memberships import services
from memberships.models import Event, Location, Membership, TierLocationPrice

from ..factories import TierFactory
from .test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc
NIGHT = T0 + timedelta(hours=13)                  # 23:00 in Los Angeles: planned, waiting for 08:00
DAWN = T0 + timedelta(hours=21)                   # 07:00: still quiet
MORNING = T0 + timedelta(days=1)                  # 10:00 the next day
SYSTEM = services.Actor.system()


def renewal_texts(membership):
    return [m.body for m in sms.outbox if m.to == membership.member.phone and "renews" in m.body]


def renewal_emails(membership):
    return [m.body for m in mail.outbox if m.to == [membership.member.email] and "renews" in m.subject]


def upcoming(membership):
    return MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE)


def test_a_tier_change_after_planning_is_announced_at_the_new_price(enroll, notice_practice):  # noqa: F811
    membership = enroll()
    luxe = TierFactory(practice=notice_practice, code="luxe", name="Luxe", price_cents=34900)
    run(NIGHT)
    assert not sms.outbox                                      # quiet hours: nothing yet
    services.change_tier(membership=membership, new_tier=luxe, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="to-luxe", now=DAWN)
    run(MORNING)
    assert [t for t in renewal_texts(membership) if "$199" in t] == []
    assert len(renewal_texts(membership)) == 1 and "renews on Jan 10 for $349.00" in renewal_texts(membership)[0]
    assert len(renewal_emails(membership)) == 1 and "charged $349.00" in renewal_emails(membership)[0]
    assert upcoming(membership).amount_cents == 34900           # the record says what the member was told


def test_a_scheduled_change_withdrawn_after_planning_is_announced_at_the_old_price(enroll, notice_practice):  # noqa: F811
    membership = enroll()
    luxe = TierFactory(practice=notice_practice, code="luxe", name="Luxe", price_cents=34900)
    services.change_tier(membership=membership, new_tier=luxe, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="to-luxe", now=NIGHT - timedelta(hours=1))
    run(NIGHT)
    assert upcoming(membership).amount_cents == 34900
    services.change_tier(membership=membership, new_tier=membership.tier, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="stay", now=DAWN)
    run(MORNING)
    assert ["$199.00" in t for t in renewal_texts(membership)] == [True]
    assert ["charged $199.00" in b for b in renewal_emails(membership)] == [True]


def test_a_clinic_price_changed_after_planning_is_the_one_announced(enroll, notice_practice, glow):  # noqa: F811
    south = Location.objects.create(practice=notice_practice, name="South")
    price = TierLocationPrice.objects.create(tier=glow[0], location=south, price_cents=17900)
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(price_location=south)
    run(NIGHT)
    TierLocationPrice.objects.filter(pk=price.pk).update(price_cents=18900)
    run(MORNING)
    assert ["$189.00" in t for t in renewal_texts(membership)] == [True]
    assert upcoming(membership).amount_cents == 18900


def test_a_move_to_a_free_tier_after_planning_withdraws_the_charge_notice(enroll, notice_practice):  # noqa: F811
    membership = enroll()
    comp = TierFactory(practice=notice_practice, code="staff", name="Staff", price_cents=0)
    run(NIGHT)
    services.change_tier(membership=membership, new_tier=comp, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="to-staff", now=DAWN)
    run(MORNING)
    assert renewal_texts(membership) == [] and renewal_emails(membership) == []
    notice = upcoming(membership)
    assert (notice.status, notice.email_status, notice.sms_status) == (
        NoticeStatus.WITHDRAWN, ChannelStatus.SKIPPED, ChannelStatus.SKIPPED)
    assert "nothing will be charged" in notice.note


def test_a_cancellation_after_planning_withdraws_it_with_one_line_on_the_timeline(enroll):  # noqa: F811
    membership = enroll()
    run(NIGHT)
    services.cancel_membership(membership=membership, actor=SYSTEM, idempotency_key="cancel", now=DAWN)
    run(MORNING)
    assert not sms.outbox and not mail.outbox
    notice = upcoming(membership)
    assert notice.status == NoticeStatus.WITHDRAWN and "the membership is cancelled" in notice.note
    lines = list(Event.objects.filter(membership=membership, payload__notice_id=notice.pk,
                                      payload__has_key="outcome").values_list("summary", flat=True))
    assert lines == ["Upcoming-charge notice withdrawn (Jan 10): the membership is cancelled"]


def test_a_pause_lifted_before_the_renewal_gets_its_notice_once(enroll):  # noqa: F811
    membership = enroll()
    run(NIGHT)
    paused = services.pause_membership(membership=membership, until=BOUNDARY.date() + timedelta(days=30),
                                       actor=SYSTEM, idempotency_key="pause", now=DAWN)
    run(MORNING)                                               # withdrawn: paused, no renewal
    assert renewal_texts(membership) == []
    assert upcoming(membership).status == NoticeStatus.WITHDRAWN
    services.resume_membership(membership=paused, actor=SYSTEM, idempotency_key="resume",
                               now=MORNING + timedelta(hours=1))
    for hours in (2, 3, 4):                                    # the hourly runs after it
        run(MORNING + timedelta(hours=hours))
    assert ["renews on Jan 10 for $199.00" in t for t in renewal_texts(membership)] == [True]
    assert len(renewal_emails(membership)) == 1
    notice = upcoming(membership)
    assert (notice.status, notice.email_status, notice.sms_status) == (
        NoticeStatus.SENT, ChannelStatus.SENT, ChannelStatus.SENT)
    assert MemberNotice.objects.filter(membership=membership).count() == 2


def test_a_past_due_membership_recovered_before_the_renewal_gets_its_notice_once(enroll):  # noqa: F811
    membership = enroll()
    run(NIGHT)
    services.mark_past_due(membership=membership, actor=SYSTEM, idempotency_key="failed", now=DAWN)
    run(MORNING)
    assert upcoming(membership).status == NoticeStatus.WITHDRAWN
    services.mark_recovered(membership=Membership.objects.get(pk=membership.pk), actor=SYSTEM,
                            idempotency_key="forgiven", now=MORNING + timedelta(hours=1))
    run(MORNING + timedelta(hours=2))
    run(MORNING + timedelta(hours=3))
    assert len(renewal_texts(membership)) == 1 and len(renewal_emails(membership)) == 1


def test_an_old_delivery_of_a_withdrawn_notice_sends_nothing_after_it_is_planned_again(enroll):  # noqa: F811
    """The SMS waits behind a member's reply held for staff while the email path withdraws the
    notice (paused); after the resume the notice is queued again. The old SMS delivery, tried
    later, must not send a second text beside the new one."""
    from integrations.messaging import holds

    membership = enroll()
    run(NIGHT)
    paused = services.pause_membership(membership=membership, until=BOUNDARY.date() + timedelta(days=30),
                                       actor=SYSTEM, idempotency_key="pause", now=DAWN)
    original = holds.is_held
    holds.is_held = lambda member_id: True                     # the SMS waits; the email withdraws the notice
    try:
        run(MORNING)
    finally:
        holds.is_held = original
    services.resume_membership(membership=paused, actor=SYSTEM, idempotency_key="resume",
                               now=MORNING + timedelta(hours=1))
    for hours in (2, 3, 6, 12):
        run(MORNING + timedelta(hours=hours))
    assert len(renewal_texts(membership)) == 1 and len(renewal_emails(membership)) == 1


def test_credit_partly_used_before_the_notice_went_is_not_counted_as_named(enroll, glow):  # noqa: F811
    membership = enroll()
    run(NIGHT)
    services.redeem_entitlement(membership=membership, service=glow[2], quantity=3000, actor=SYSTEM,
                                idempotency_key="used-30", now=DAWN)
    run(MORNING)
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.EXPIRING_CREDIT)
    assert notice.status == NoticeStatus.SENT
    assert notice.nudged == {str(glow[2].pk): 2000}            # what would still expire when it went


def test_a_four_figure_price_set_after_planning_still_fits_one_sms(enroll, notice_practice):  # noqa: F811
    membership = enroll()
    big = TierFactory(practice=notice_practice, code="big", name="Big", price_cents=129900)
    run(NIGHT)
    services.change_tier(membership=membership, new_tier=big, effective="next_cycle", actor=SYSTEM,
                         idempotency_key="to-big", now=DAWN)
    run(MORNING)
    texts = renewal_texts(membership)
    assert len(texts) == 1 and "$1,299.00" in texts[0] and len(texts[0]) <= 160


def test_the_dashboard_counts_only_what_was_used_after_the_notice_went(enroll, glow):  # noqa: F811
    """$30 of the $50 used overnight, before the notice went at 08:00: the notice named the $20
    left, and nothing of it was used by the renewal, so the notices earned nothing."""
    from billing.metrics.nudges import nudge_effect

    membership = enroll()
    run(NIGHT)
    services.redeem_entitlement(membership=membership, service=glow[2], quantity=3000, actor=SYSTEM,
                                idempotency_key="used-30", now=DAWN)
    run(MORNING)
    services.refill_entitlements(membership=membership, cycle_key="renew", actor=services.Actor.processor(),
                                 now=BOUNDARY)
    effect = nudge_effect(practice_id=membership.member.practice_id, now=BOUNDARY + timedelta(days=1), months=2)
    january = next(m for m in effect.months if m.month.month == 1)
    assert (january.notices, january.nudged_cents, january.used_cents, january.expired_cents) == (1, 2000, 0, 2000)


def test_a_notice_planned_again_honours_a_stop_and_quiet_hours(enroll):  # noqa: F811
    membership = enroll()
    run(NIGHT)
    paused = services.pause_membership(membership=membership, until=BOUNDARY.date() + timedelta(days=30),
                                       actor=SYSTEM, idempotency_key="pause", now=DAWN)
    run(MORNING)
    services.record_sms_opt_out(member=membership.member, actor=services.Actor.system("sms"),
                                now=MORNING + timedelta(hours=1), source="STOP")
    late = MORNING + timedelta(hours=12)                       # 22:00 in Los Angeles
    services.resume_membership(membership=paused, actor=SYSTEM, idempotency_key="resume", now=late)
    run(late + timedelta(minutes=30))                          # planned again, at night
    assert renewal_emails(membership) == []
    run(MORNING + timedelta(days=1))                           # 10:00 the next day
    assert sms.outbox == [] and len(renewal_emails(membership)) == 1
    notice = upcoming(membership)
    assert (notice.status, notice.email_status, notice.sms_status) == (
        NoticeStatus.SENT, ChannelStatus.SENT, ChannelStatus.SKIPPED)
