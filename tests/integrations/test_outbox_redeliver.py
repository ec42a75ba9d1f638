"""A manager's "redeliver" of a member message that never went — dead-lettered after the provider
stayed down, or refused by the provider (a wrong number) — really sends it, once, to the member's
contact on file now; the message's own record (the dunning case's message, the notice's channel) and
the timeline say what happened at each turn, never "pending" for ever. A redelivery that could not
do what it says (the member replied STOP, the follow-up ended) is refused with the reason and changes
nothing."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from billing import dunning
from billing.models import ChannelStatus, DunningMessage, MemberNotice, MessageStatus, NoticeKind, NoticeStatus
from billing.notices import plan_notices
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships import services as ledger
from memberships.models import AutomationStage, Event, EventKind, Member, Membership
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
    membership,
    sms_to,
)
from tests.factories import MemberFactory, active_membership

pytestmark = pytest.mark.django_db


class SmtpDown(EmailBackend):
    """The mail server refuses the connection: nothing was sent."""

    def open(self):
        raise ConnectionRefusedError("connection refused")

    def send_messages(self, messages):
        raise ConnectionRefusedError("connection refused")


class TwilioDown(sms.LocmemBackend):
    def send(self, **kwargs):
        raise sms.SmsUnavailable("twilio unreachable: ConnectTimeout")


class TwilioWrongNumber(sms.LocmemBackend):
    """Twilio refuses a number that cannot take texts (21614), and sends to any other."""

    bad = "+13105550100"

    def send(self, *, to, **kwargs):
        if to == self.bad:
            raise sms.SmsRejected("twilio refused the message (400, 21614)", code="21614")
        return super().send(to=to, **kwargs)


def until_dead(delivery_id, *, start):
    """The outbox runs at each retry until the delivery is given up (or delivered)."""
    now = start
    for _ in range(10):
        outbox.dispatch_due(now=now)
        delivery = Delivery.objects.get(pk=delivery_id)
        if delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
            return delivery, now
        now = max(now, delivery.next_attempt_at)
    raise AssertionError("never given up")


@pytest.fixture
def notice_member(practice, glow, settings):
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    practice.automation_stage = AutomationStage.NOTICES
    practice.timezone = "America/Los_Angeles"
    practice.save()
    member = MemberFactory(practice=practice, sms_consent=False)
    membership = active_membership(tier=glow[0], member=member, now=T0 - timedelta(days=25))
    Membership.objects.filter(pk=membership.pk).update(current_period_end=T0 + timedelta(days=5))
    return member


def test_a_dead_lettered_notice_is_sent_once_when_a_manager_redelivers_it(notice_member, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    mail.outbox.clear()
    plan_notices(now=T0)
    notice = MemberNotice.objects.get(member=notice_member, kind=NoticeKind.UPCOMING_CHARGE)
    delivery = Delivery.objects.get(destination="member_notice", event__payload__notice_id=notice.pk)

    def copies():
        return [m for m in mail.outbox if m.extra_headers.get("X-Medspa-Message") == f"member-notice-{notice.pk}"]

    settings.EMAIL_BACKEND = f"{__name__}.SmtpDown"
    delivery, later = until_dead(delivery.pk, start=T0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert delivery.status == DeliveryStatus.DEAD and copies() == []
    notice.refresh_from_db()
    assert notice.email_status == ChannelStatus.FAILED

    morning = later + timedelta(hours=1)
    assert outbox.redeliver(delivery, now=morning)
    notice.refresh_from_db()
    assert notice.email_status == ChannelStatus.QUEUED and notice.status == NoticeStatus.QUEUED
    for minutes in (0, 1, 5):
        outbox.dispatch_due(now=morning + timedelta(minutes=minutes))
    assert not outbox.redeliver(Delivery.objects.get(pk=delivery.pk), now=morning)   # a second click: nothing

    assert len(copies()) == 1                          # it really went, once
    notice.refresh_from_db()
    assert notice.email_status == ChannelStatus.SENT and notice.status == NoticeStatus.SENT
    assert notice.sent_at == morning
    lines = list(Event.objects.filter(member=notice_member, payload__notice_id=notice.pk)
                 .order_by("created_at", "id").values_list("summary", flat=True))
    assert any("not sent by email" in line and "could not be delivered" in line for line in lines)
    assert any("sent again" in line.lower() and "manager" in line.lower() for line in lines)
    assert lines[-1].startswith("Upcoming charge notice sent by email") or "sent by email" in lines[-1]


def card_update_sms(membership):
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    return Delivery.objects.get(destination="member_message", event__payload__channel="sms")


def test_a_dead_lettered_card_update_sms_reads_failed_with_why_and_a_redelivery_sends_it(
        membership, monkeypatch, settings, admin_client):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    member = membership.member
    delivery = card_update_sms(membership)
    with monkeypatch.context() as patch:
        patch.setattr(sms, "get_backend", TwilioDown)
        delivery, later = until_dead(delivery.pk, start=T0)
    assert delivery.status == DeliveryStatus.DEAD and sms_to(member) == []

    message = DunningMessage.objects.get(channel="sms")
    assert message.status == MessageStatus.FAILED and message.sent_at is None     # not "pending" for ever
    page = admin_client.get(f"/admin/billing/dunningcase/{message.case_id}/change/").content.decode()
    assert "Failed" in page and "Pending" not in page.split("Timeline")[0].split("Messages")[-1]
    assert "SMS not delivered (the provider could not be reached" in page

    redelivered_at = later + timedelta(hours=1)
    assert outbox.redeliver(delivery, now=redelivered_at)
    for minutes in (0, 1):
        outbox.dispatch_due(now=redelivered_at + timedelta(minutes=minutes))
    assert len(sms_to(member)) == 1
    message.refresh_from_db()
    assert message.sent_at == redelivered_at and message.status == MessageStatus.QUEUED
    assert Event.objects.filter(member=member, kind=EventKind.MESSAGE_SENT, payload__message_id=message.pk).count() == 1


def test_an_sms_to_a_wrong_number_goes_to_the_number_the_staff_put_right(membership, monkeypatch):
    member = membership.member
    Member.objects.filter(pk=member.pk).update(phone=TwilioWrongNumber.bad)
    monkeypatch.setattr(sms, "get_backend", TwilioWrongNumber)
    delivery = card_update_sms(membership)
    outbox.dispatch_due(now=T0)
    delivery.refresh_from_db()
    message = DunningMessage.objects.get(channel="sms")
    assert delivery.status == DeliveryStatus.FAILED
    assert message.status == MessageStatus.FAILED and message.error_code == "21614"

    Member.objects.filter(pk=member.pk).update(phone="+13105550199")        # the desk fixed the number
    assert outbox.redeliver(delivery, now=T0 + timedelta(hours=1))
    outbox.dispatch_due(now=T0 + timedelta(hours=1))
    [text] = [m for m in sms.outbox if m.to == "+13105550199"]
    assert "https://ledger.example.com/billing/card/" in text.body
    message.refresh_from_db()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and message.sent_at == T0 + timedelta(hours=1)
    assert message.error_code == ""
    summaries = Event.objects.filter(member=member, payload__message_id=message.pk).values_list("summary", flat=True)
    assert any("sent again" in s.lower() for s in summaries)


def test_a_redelivery_to_a_member_who_replied_stop_is_refused_and_changes_nothing(membership, monkeypatch,
                                                                                  admin_client):
    member = membership.member
    Member.objects.filter(pk=member.pk).update(phone=TwilioWrongNumber.bad)
    monkeypatch.setattr(sms, "get_backend", TwilioWrongNumber)
    delivery = card_update_sms(membership)
    outbox.dispatch_due(now=T0)
    member.refresh_from_db()
    ledger.record_sms_opt_out(member=member, actor=ledger.Actor.system("sms"), now=T0, source="STOP")

    with pytest.raises(outbox.RedeliveryRefused) as refused:
        outbox.redeliver(Delivery.objects.get(pk=delivery.pk), now=T0 + timedelta(hours=1))
    assert "STOP" in str(refused.value)
    response = admin_client.post("/admin/integrations/delivery/", {
        "action": "redeliver_selected", "_selected_action": [delivery.pk]}, follow=True)
    assert "replied STOP" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.FAILED
    outbox.dispatch_due(now=T0 + timedelta(hours=2))
    assert sms.outbox == []


def test_a_dead_letter_whose_bookkeeping_failed_too_still_reads_failed(membership, monkeypatch, settings):
    """The last attempt given up by the outbox's fallback (its own record of the outcome failed
    first) still tells the case: the message failed, not pending for ever."""
    settings.OUTBOX_MAX_ATTEMPTS = 1
    delivery = card_update_sms(membership)

    def refused(delivery, **kwargs):
        raise RuntimeError("the database refused the write")

    with monkeypatch.context() as patch:
        patch.setattr(sms, "get_backend", TwilioDown)
        patch.setattr(outbox, "_save", refused)
        outbox.dispatch_due(now=T0)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and "refused the write" in delivery.last_error
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.FAILED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_managers_redelivering_one_dead_letter_at_once_send_it_once(membership, monkeypatch, settings):
    from tests.memberships.ledger_checks import hammer

    settings.OUTBOX_MAX_ATTEMPTS = 1
    member = membership.member
    delivery = card_update_sms(membership)
    with monkeypatch.context() as patch:
        patch.setattr(sms, "get_backend", TwilioDown)
        outbox.dispatch_due(now=T0)
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DEAD
    later = T0 + timedelta(hours=1)

    def manager(i):
        queued = outbox.redeliver(Delivery.objects.get(pk=delivery.pk), now=later)
        outbox.dispatch_due(now=later)
        return queued

    queued, errors = hammer(manager, 2)      # whichever is first queues it; the other finds it queued or gone
    outbox.dispatch_due(now=later + timedelta(minutes=1))

    assert errors == [] and sorted(queued) == [False, True]
    assert len(sms_to(member)) == 1
    message = DunningMessage.objects.get(channel="sms")
    assert message.sent_at == later
    assert Event.objects.filter(member=member, payload__message_id=message.pk, payload__redelivered=True).count() == 1


def test_card_update_messages_dead_lettered_before_this_release_read_failed_after_the_migration(
        membership, monkeypatch, settings):
    import importlib

    from django.apps import apps

    from integrations.messaging.destinations import MemberMessageDestination

    settings.OUTBOX_MAX_ATTEMPTS = 1
    delivery = card_update_sms(membership)
    with monkeypatch.context() as patch:                 # dead-lettered as before `on_dead` existed
        patch.setattr(sms, "get_backend", TwilioDown)
        patch.delattr(MemberMessageDestination, "on_dead")
        outbox.dispatch_due(now=T0)
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DEAD
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.PENDING

    migration = importlib.import_module("integrations.migrations.0007_dead_member_messages_failed")
    for _ in range(2):
        migration.dead_messages_failed(apps, None)
    message = DunningMessage.objects.get(channel="sms")
    assert message.status == MessageStatus.FAILED and message.status_updated_at == T0
    assert DunningMessage.objects.get(channel="email").status == MessageStatus.SENT     # what went stays
