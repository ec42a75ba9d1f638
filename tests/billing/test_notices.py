"""Member notices, as the member and the front desk see them: an upcoming-charge notice (amount,
date, the member page's sign-in address) and an expiring-credit notice ("benefits that expire on
Jan 10") go once per membership and boundary however often the scheduled run repeats; SMS only with
consent and never after STOP; nothing during the member's quiet hours (it goes when they end);
nothing below the `notices` stage; no tier or treatment name in any message."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.core import mail

from billing.models import ChannelStatus, MemberNotice, NoticeKind, NoticeSettings, NoticeStatus
from billing.notices import plan_notices
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.models import AutomationStage, Event, EventKind, Location, Membership, MembershipStatus

from ..factories import MemberFactory, active_membership

UTC = dt_timezone.utc
# Monday Jan 5 2026, 10:00 in Los Angeles (PST all month): outside quiet hours (21:00-08:00).
T0 = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
BOUNDARY = datetime(2026, 1, 10, 18, 0, tzinfo=UTC)      # the renewal: Jan 10, 10:00 in Los Angeles
LINK = "https://ledger.example.com/me/link/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def messaging(settings):
    settings.SMS_BACKEND = "locmem"
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    sms.outbox.clear()
    sms.opted_out_numbers.clear()
    yield
    sms.outbox.clear()
    sms.opted_out_numbers.clear()


@pytest.fixture
def notice_practice(practice):
    practice.automation_stage = AutomationStage.NOTICES
    practice.timezone = "America/Los_Angeles"
    practice.save()
    return practice


@pytest.fixture
def enroll(notice_practice, glow):
    """An active Glow member (one HydraFacial that carries over, $50 product credit that does not)
    whose membership renews at BOUNDARY."""
    tier = glow[0]

    def make(**kwargs):
        member = MemberFactory(practice=notice_practice, **kwargs)
        membership = active_membership(tier=tier, member=member, now=T0 - timedelta(days=25))
        Membership.objects.filter(pk=membership.pk).update(current_period_end=BOUNDARY)
        membership.refresh_from_db()
        return membership
    return make


def run(now):
    """One scheduled run at `now`, then the outbox until nothing more is due at `now`."""
    counts = plan_notices(now=now)
    for _ in range(5):
        if not outbox.dispatch_due(now=now):
            break
    return counts


def sms_to(member):
    return [m.body for m in sms.outbox if m.to == member.phone]


def mail_to(member):
    return [m for m in mail.outbox if m.to == [member.email]]


def test_both_notices_go_once_by_email_and_sms_across_two_runs(enroll):
    membership = enroll(first_name="Ana")
    member = membership.member
    run(T0)
    run(T0 + timedelta(hours=1))
    run(T0 + timedelta(days=1))

    assert sorted(sms_to(member)) == sorted([
        f"Glow Aesthetics: your membership renews on Jan 10 for $199.00. Details: {LINK} Reply STOP to opt out.",
        f"Glow Aesthetics: you have membership benefits that expire on Jan 10 - see them: {LINK} "
        "Reply STOP to opt out.",
    ])
    assert all(len(body) <= 160 for body in sms_to(member))
    emails = mail_to(member)
    assert sorted(m.subject for m in emails) == [
        "Glow Aesthetics: membership benefits that expire on Jan 10",
        "Glow Aesthetics: your membership renews on Jan 10",
    ]
    assert all(LINK in m.body for m in emails)
    charge = next(m for m in emails if "renews" in m.subject)
    assert "charged $199.00" in charge.body
    for text in sms_to(member) + [m.body + m.subject for m in emails]:
        assert "HydraFacial" not in text and "Product credit" not in text and "$50" not in text
        assert "Glow" not in text.replace("Glow Aesthetics", "")          # the tier's name
    notices = MemberNotice.objects.filter(membership=membership)
    assert sorted(notices.values_list("kind", "status", "email_status", "sms_status")) == [
        (NoticeKind.EXPIRING_CREDIT, NoticeStatus.SENT, ChannelStatus.SENT, ChannelStatus.SENT),
        (NoticeKind.UPCOMING_CHARGE, NoticeStatus.SENT, ChannelStatus.SENT, ChannelStatus.SENT),
    ]
    expiring = notices.get(kind=NoticeKind.EXPIRING_CREDIT)
    credit = membership.tier.benefits.get(service__code="product-credit").service
    assert expiring.nudged == {str(credit.pk): 5000}          # the dry run: $50 of credit expires, the facial carries
    sent = Event.objects.filter(member=member, kind=EventKind.MESSAGE_SENT).values_list("summary", flat=True)
    assert sorted(sent) == ["Expiring-credit notice sent by SMS (Jan 10)", "Expiring-credit notice sent by email (Jan 10)",
                            "Upcoming-charge notice sent by SMS (Jan 10)", "Upcoming-charge notice sent by email (Jan 10)"]


def test_nothing_before_the_notice_days_then_on_the_day(enroll):
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(current_period_end=BOUNDARY + timedelta(days=5))
    run(T0)                                                    # Jan 15 is 10 days away
    assert MemberNotice.objects.count() == 0 and not sms.outbox and not mail.outbox
    run(T0 + timedelta(days=2, hours=-9))                       # Jan 7, 01:00: still 8 days in local dates
    assert MemberNotice.objects.count() == 0
    run(T0 + timedelta(days=3))                                 # Jan 8: 7 days before Jan 15
    assert MemberNotice.objects.count() == 2
    assert len(sms_to(membership.member)) == 2


def test_the_practice_sets_its_own_days(enroll, notice_practice):
    NoticeSettings.objects.create(practice=notice_practice, upcoming_charge_days=3, expiring_credit_days=7)
    membership = enroll()
    run(T0)                                                    # 5 days before: only the expiring credit
    assert list(MemberNotice.objects.values_list("kind", flat=True)) == [NoticeKind.EXPIRING_CREDIT]
    run(T0 + timedelta(days=2))                                # Jan 7: 3 days before
    assert MemberNotice.objects.filter(membership=membership).count() == 2


@pytest.mark.parametrize("stage", [AutomationStage.OBSERVE, AutomationStage.DUNNING, AutomationStage.TIER_SYNC])
def test_nothing_below_the_notices_stage(enroll, notice_practice, stage):
    enroll()
    notice_practice.automation_stage = stage
    notice_practice.save()
    run(T0)
    assert MemberNotice.objects.count() == 0 and not sms.outbox and not mail.outbox


def test_a_home_location_behind_the_practice_gets_none(enroll, notice_practice):
    behind = Location.objects.create(practice=notice_practice, name="Pasadena", automation_stage=AutomationStage.TIER_SYNC)
    held_back = enroll(home_location=behind)
    others = enroll()
    run(T0)
    assert not MemberNotice.objects.filter(membership=held_back).exists()
    assert MemberNotice.objects.filter(membership=others).count() == 2


def test_a_home_location_ahead_of_the_practice_gets_them(enroll, notice_practice):
    notice_practice.automation_stage = AutomationStage.TIER_SYNC
    notice_practice.save()
    pilot = Location.objects.create(practice=notice_practice, name="Pilot clinic", automation_stage=AutomationStage.NOTICES)
    ahead = enroll(home_location=pilot)
    enroll()
    run(T0)
    assert set(MemberNotice.objects.values_list("membership_id", flat=True)) == {ahead.pk}
    assert len(sms.outbox) == 2 and all(m.to == ahead.member.phone for m in sms.outbox)


def test_no_sms_without_consent_the_email_goes(enroll):
    membership = enroll(sms_consent=False)
    run(T0)
    assert sms.outbox == []
    assert len(mail_to(membership.member)) == 2
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE)
    assert (notice.status, notice.sms_status, notice.note) == (NoticeStatus.SENT, ChannelStatus.SKIPPED,
                                                               "SMS: no consent")


def test_no_sms_after_stop_even_one_queued_before_it(enroll):
    stopped = enroll()
    services.record_sms_opt_out(member=stopped.member, actor=services.Actor.system("sms"), now=T0, source="STOP")
    late = enroll()
    night = T0 + timedelta(hours=13)                           # 23:00: queued, waiting for the morning
    run(night)
    assert not sms.outbox and not mail.outbox
    services.record_sms_opt_out(member=late.member, actor=services.Actor.system("sms"), now=night, source="STOP")
    run(T0 + timedelta(days=1))                                # 10:00 the next day
    assert sms.outbox == []
    assert len(mail_to(stopped.member)) == 2 and len(mail_to(late.member)) == 2   # STOP is about texts
    assert set(MemberNotice.objects.values_list("sms_status", flat=True)) == {ChannelStatus.SKIPPED}
    assert MemberNotice.objects.get(membership=late, kind=NoticeKind.UPCOMING_CHARGE).note == "SMS: opted out (STOP)"


def test_the_number_opted_out_at_the_provider_is_recorded(enroll):
    membership = enroll()
    sms.opted_out_numbers.add(membership.member.phone)
    run(T0)
    membership.member.refresh_from_db()
    assert membership.member.sms_opted_out_at == T0
    assert len(mail_to(membership.member)) == 2
    assert set(MemberNotice.objects.values_list("status", "sms_status")) == {(NoticeStatus.SENT, ChannelStatus.SKIPPED)}


def test_none_in_quiet_hours_they_go_when_quiet_hours_end(enroll):
    membership = enroll()
    night = T0 + timedelta(hours=17)                           # 03:00 in Los Angeles
    run(night)
    assert MemberNotice.objects.count() == 2                   # decided once …
    assert not sms.outbox and not mail.outbox                  # … but nothing sent at night
    waiting = Delivery.objects.filter(destination="member_notice")
    morning = datetime(2026, 1, 6, 16, 0, tzinfo=UTC)          # 08:00 in Los Angeles
    assert set(waiting.values_list("status", "next_attempt_at")) == {(DeliveryStatus.PENDING, morning)}
    run(morning - timedelta(minutes=1))
    assert not sms.outbox and not mail.outbox
    run(morning)
    assert len(sms_to(membership.member)) == 2 and len(mail_to(membership.member)) == 2


def test_the_member_home_zone_decides_the_night(enroll, notice_practice):
    east = Location.objects.create(practice=notice_practice, name="Manhattan", timezone="America/New_York")
    membership = enroll(home_location=east)
    run(T0 + timedelta(hours=10, minutes=30))                  # 20:30 in Los Angeles, 23:30 in New York
    assert not sms.outbox and not mail.outbox
    run(datetime(2026, 1, 6, 13, 0, tzinfo=UTC))               # 08:00 in New York
    assert len(sms_to(membership.member)) == 2


def test_no_expiring_notice_when_nothing_would_expire(enroll):
    membership = enroll()
    credit = membership.tier.benefits.get(service__code="product-credit").service
    services.redeem_entitlement(membership=membership, service=credit, quantity=5000, actor=services.Actor.system(),
                                idempotency_key="spent-it", now=T0 - timedelta(days=1))
    run(T0)
    assert list(MemberNotice.objects.values_list("kind", flat=True)) == [NoticeKind.UPCOMING_CHARGE]


def test_a_renewal_that_stopped_before_sending_is_not_announced(enroll, notice_practice):
    membership = enroll()
    night = T0 + timedelta(hours=13)
    run(night)
    services.cancel_membership(membership=membership, actor=services.Actor.system(), idempotency_key="cancel",
                               now=night + timedelta(minutes=5))
    run(T0 + timedelta(days=1))
    assert not sms.outbox and not mail.outbox
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE)
    assert (notice.status, notice.email_status, notice.sms_status) == (
        NoticeStatus.WITHDRAWN, ChannelStatus.SKIPPED, ChannelStatus.SKIPPED)
    assert "the membership is cancelled" in notice.note


def test_credit_used_while_the_notice_waited_for_morning_is_not_announced(enroll, glow):
    membership = enroll()
    night = T0 + timedelta(hours=13)
    run(night)
    services.redeem_entitlement(membership=membership, service=glow[2], quantity=5000, actor=services.Actor.system(),
                                idempotency_key="used-overnight", now=night + timedelta(hours=1))
    run(T0 + timedelta(days=1))
    assert [m.subject for m in mail_to(membership.member)] == ["Glow Aesthetics: your membership renews on Jan 10"]
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.EXPIRING_CREDIT)
    assert notice.status == NoticeStatus.WITHDRAWN and "nothing is left to expire" in notice.note


def test_a_practice_moved_back_below_the_stage_sends_nothing_queued(enroll, notice_practice):
    enroll()
    run(T0 + timedelta(hours=13))                              # queued at night
    notice_practice.automation_stage = AutomationStage.TIER_SYNC
    notice_practice.save()
    run(T0 + timedelta(days=1))
    assert not sms.outbox and not mail.outbox
    assert set(Delivery.objects.filter(destination="member_notice").values_list("status", flat=True)) == {
        DeliveryStatus.SHADOWED}
    run(BOUNDARY)                                              # the renewal came: the notice never went
    assert set(MemberNotice.objects.values_list("status", "email_status", "sms_status", "note")) == {
        (NoticeStatus.SKIPPED, ChannelStatus.SKIPPED, ChannelStatus.SKIPPED, "not sent before the renewal")}


def test_a_member_with_neither_email_nor_consent_is_noted_once(enroll):
    membership = enroll(email="", sms_consent=False)
    run(T0)
    run(T0 + timedelta(days=1))
    assert not sms.outbox and not mail.outbox
    assert set(MemberNotice.objects.values_list("status", "note")) == {
        (NoticeStatus.SKIPPED, "no email address; SMS: no consent")}
    assert Event.objects.filter(membership=membership, summary__contains="notice not sent").count() == 2


def test_paused_and_past_due_memberships_get_no_notice(enroll):
    paused, past_due = enroll(), enroll()
    Membership.objects.filter(pk=paused.pk).update(status=MembershipStatus.PAUSED)
    Membership.objects.filter(pk=past_due.pk).update(status=MembershipStatus.PAST_DUE)
    run(T0)
    assert MemberNotice.objects.count() == 0


def test_the_link_in_a_notice_opens_nothing_by_itself(client, enroll):
    enroll()
    run(T0)
    response = client.get("/me/link/")
    assert response.status_code == 200
    assert "member_id" not in client.session


def test_a_manager_sets_the_notice_days_in_the_admin_audited(client, manager, notice_practice):
    from memberships.models import AuditLog

    client.force_login(manager)
    response = client.post("/admin/billing/noticesettings/add/",
                           {"practice": notice_practice.pk, "upcoming_charge_days": 3, "expiring_credit_days": 10})
    assert response.status_code == 302, response.content.decode()[:2000]
    row = NoticeSettings.objects.get(practice=notice_practice)
    assert (row.upcoming_charge_days, row.expiring_credit_days) == (3, 10)
    audit = AuditLog.objects.get(action="notice_settings")
    assert audit.user == manager and audit.detail["after"] == {"upcoming_charge_days": 3, "expiring_credit_days": 10}
    refused = client.post(f"/admin/billing/noticesettings/{row.pk}/change/",
                          {"upcoming_charge_days": 0, "expiring_credit_days": 10})
    assert refused.status_code == 200                          # the form says why; nothing changed
    row.refresh_from_db()
    assert row.upcoming_charge_days == 3 and AuditLog.objects.filter(action="notice_settings").count() == 1


def test_the_notices_sent_are_listed_in_the_admin_each_member_audited(client, manager, enroll):
    from memberships.models import AuditLog

    membership = enroll()
    run(T0)
    client.force_login(manager)
    listing = client.get("/admin/billing/membernotice/")
    assert listing.status_code == 200 and "Upcoming charge" in listing.content.decode()
    notice = MemberNotice.objects.filter(membership=membership).first()
    assert client.get(f"/admin/billing/membernotice/{notice.pk}/change/").status_code == 200
    assert AuditLog.objects.filter(member_id=membership.member_id, user=manager).count() == 2
