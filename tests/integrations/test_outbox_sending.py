"""A member message is never sent twice because its worker stopped at the wrong moment: after the
provider accepted it and before the outcome was recorded. Here the stop is an exception no code of
ours catches, raised inside the provider call once the provider has the message, so nothing after it
runs — as with a killed process, whose transaction is rolled back (the real SIGKILL, in a child
process on PostgreSQL, is `test_outbox_sending_crash.py`). What was committed before the call stays:
the delivery's SENDING mark. The member, the front desk and the manager then see "may have been
sent", never "sent" and never pending for ever; only a manager sends it again."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.urls import reverse

from billing import dunning
from billing.models import ChannelStatus, DunningMessage, MemberNotice, MessageStatus, NoticeKind, NoticeStatus
from billing.notices import plan_notices
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AutomationStage, Event, EventKind, Membership
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


class WorkerKilled(BaseException):
    """Stands for SIGKILL: no `except Exception` of ours sees it; every open transaction rolls back."""


class TwilioAcceptsThenTheWorkerDies(sms.LocmemBackend):
    def send(self, **kwargs):
        super().send(**kwargs)                  # the provider has it: the member's phone will ring
        raise WorkerKilled


class SmtpAcceptsThenTheWorkerDies(EmailBackend):
    def send_messages(self, messages):
        super().send_messages(messages)         # the mail server has it
        raise WorkerKilled


def timeout(settings):
    return timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS)


def sms_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="sms")


def killed_while_sending_the_card_update_sms(membership, monkeypatch):
    """A failed payment's day-0 card-update SMS; the worker dies once Twilio accepted it."""
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    delivery = sms_delivery()
    with monkeypatch.context() as patch:
        patch.setattr(sms, "get_backend", TwilioAcceptsThenTheWorkerDies)
        with pytest.raises(WorkerKilled):
            outbox.deliver_one(delivery.pk, now=T0)
    assert len(sms_to(membership.member)) == 1
    return delivery


def test_an_sms_twilio_accepted_before_its_worker_died_is_not_sent_again(membership, monkeypatch, settings):
    member = membership.member
    delivery = killed_while_sending_the_card_update_sms(membership, monkeypatch)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENDING and delivery.attempts == 1

    for minutes in (1, 5, 14):                  # the next runs, while a worker could still be on it
        outbox.dispatch_due(now=T0 + timedelta(minutes=minutes))
    assert len(sms_to(member)) == 1
    later = T0 + timeout(settings) + timedelta(seconds=1)
    outbox.dispatch_due(now=later)
    for hours in (1, 24, 72):
        outbox.dispatch_due(now=later + timedelta(hours=hours))

    assert len(sms_to(member)) == 1             # the member got it at most once
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNCERTAIN
    assert delivery.get_status_display().startswith("May have been sent")
    assert delivery.note.startswith("may have been sent") and "not sent again by itself" in delivery.note
    message = DunningMessage.objects.get(channel="sms")
    assert message.get_status_display() == "May have been sent" and message.sent_at is None
    history = Event.objects.filter(member=member, payload__message_id=message.pk)
    assert not history.filter(kind=EventKind.MESSAGE_SENT).exists()          # never "sent"
    [note] = [e.summary for e in history if "may have been sent" in e.summary]
    assert note.startswith("Card-update SMS may have been sent") and "not sent again" in note.lower()
    email = DunningMessage.objects.get(channel="email")                       # the step's email went as usual
    assert email.sent_at is not None


def test_a_manager_sees_it_and_redelivers_it_by_hand(membership, monkeypatch, settings, client, manager):
    member = membership.member
    delivery = killed_while_sending_the_card_update_sms(membership, monkeypatch)
    later = T0 + timeout(settings) + timedelta(minutes=1)
    outbox.dispatch_due(now=later)

    client.force_login(manager)
    dashboard = client.get(reverse("manager:dashboard")).content.decode()
    assert "1 member message may have been sent" in dashboard.split('data-testid="attention"')[1]
    page = client.get("/admin/integrations/delivery/").content.decode()
    assert "1 member message may have been sent" in page and "redeliver" in page
    client.post("/admin/integrations/delivery/", {"action": "redeliver_selected", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.PENDING

    for _ in range(2):                          # (deferred first if it is night for the member now)
        outbox.dispatch_due(now=Delivery.objects.get(pk=delivery.pk).next_attempt_at)
    assert len(sms_to(member)) == 2             # sent again because a person decided so
    delivery.refresh_from_db()
    message = DunningMessage.objects.get(channel="sms")
    assert delivery.status == DeliveryStatus.DELIVERED and message.sent_at is not None
    assert Event.objects.filter(member=member, kind=EventKind.MESSAGE_SENT, payload__message_id=message.pk).exists()


def test_a_manager_who_checked_it_closes_it_and_it_leaves_needs_attention(membership, monkeypatch, settings,
                                                                          client, manager):
    """The member was reached by phone: nothing more to send. The manager marks it checked (audited);
    it leaves the dashboard's Needs attention and the outbox's count, and is not sent; a later
    redelivery (a change of mind) clears the mark."""
    from memberships.models import AuditLog

    member = membership.member
    delivery = killed_while_sending_the_card_update_sms(membership, monkeypatch)
    outbox.dispatch_due(now=T0 + timeout(settings) + timedelta(minutes=1))
    client.force_login(manager)
    client.post("/admin/integrations/delivery/", {"action": "mark_checked", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNCERTAIN and delivery.checked_by == manager
    assert AuditLog.objects.filter(action="delivery_checked", object_id=str(delivery.pk), user=manager).count() == 1
    attention = client.get(reverse("manager:dashboard")).content.decode().split('data-testid="attention"')
    assert len(attention) == 1 or "may have been sent" not in attention[1].split("</section>")[0]
    assert "1 member message may have been sent" not in client.get("/admin/integrations/delivery/").content.decode()
    client.post("/admin/integrations/delivery/", {"action": "mark_checked", "_selected_action": [delivery.pk]})
    assert AuditLog.objects.filter(action="delivery_checked").count() == 1          # once
    outbox.dispatch_due(now=T0 + timeout(settings) + timedelta(hours=1))
    assert len(sms_to(member)) == 1                                                 # not sent again
    client.post("/admin/integrations/delivery/", {"action": "redeliver_selected", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.checked_at is None


def test_an_sms_twilio_accepted_whose_recording_then_failed_is_not_sent_again(membership, monkeypatch):
    """Not only a dead worker: a database error while recording the send (after Twilio accepted)
    undoes the record of it, and a retry would text the member again."""
    member = membership.member
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    delivery = sms_delivery()

    def refused(**kwargs):
        raise RuntimeError("the database refused the write")

    with monkeypatch.context() as patch:
        patch.setattr(dunning, "record_message_sent", refused)
        outbox.deliver_one(delivery.pk, now=T0)
    for hours in (1, 12, 48):
        outbox.dispatch_due(now=T0 + timedelta(hours=hours))

    assert len(sms_to(member)) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNCERTAIN and "refused the write" in delivery.last_error
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.UNCERTAIN


def test_a_worker_still_on_its_sms_past_the_timeout_keeps_it(membership, settings):
    """A slow provider is not a dead worker: what the worker records wins, and the sweep that comes
    after finds nothing to give up on."""
    fail(membership, now=T0)
    dunning.run_dunning(now=T0)
    delivery = sms_delivery()
    outbox.deliver_one(delivery.pk, now=T0)
    outbox.sweep_sending(now=T0 + 10 * timeout(settings))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.sending_since is None
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.QUEUED


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


def test_a_renewal_notice_email_the_mail_server_took_before_its_worker_died(notice_member, settings):
    mail.outbox.clear()
    plan_notices(now=T0)
    notice = MemberNotice.objects.get(member=notice_member, kind=NoticeKind.UPCOMING_CHARGE)
    delivery = Delivery.objects.get(destination="member_notice", event__payload__notice_id=notice.pk)

    def copies():
        return [m for m in mail.outbox if m.extra_headers.get("X-Medspa-Message") == f"member-notice-{notice.pk}"]

    settings.EMAIL_BACKEND = f"{__name__}.SmtpAcceptsThenTheWorkerDies"
    with pytest.raises(WorkerKilled):
        outbox.deliver_one(delivery.pk, now=T0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert len(copies()) == 1

    outbox.dispatch_due(now=T0 + timeout(settings) + timedelta(seconds=1))
    outbox.dispatch_due(now=T0 + timedelta(days=1))
    assert len(copies()) == 1
    notice.refresh_from_db()
    assert notice.email_status == ChannelStatus.UNCERTAIN and notice.status == NoticeStatus.UNCERTAIN
    assert notice.get_status_display() == "May have been sent" and notice.sent_at is None
    [line] = Event.objects.filter(member=notice_member, payload__notice_id=notice.pk,
                                  payload__outcome=ChannelStatus.UNCERTAIN).values_list("summary", flat=True)
    assert "may have been sent by email" in line and "not sent" not in line

    delivery.refresh_from_db()
    outbox.redeliver(delivery, now=T0 + timedelta(days=1))
    notice.refresh_from_db()
    assert notice.email_status == ChannelStatus.QUEUED and notice.status == NoticeStatus.QUEUED
    outbox.dispatch_due(now=T0 + timedelta(days=1))
    notice.refresh_from_db()
    assert len(copies()) == 2 and notice.status == NoticeStatus.SENT


class RecordingPeer:
    """A destination whose peer does nothing twice for one key (like the processor's Idempotency-Key)."""

    name = "test-idempotent-peer"
    repeatable = True

    def __init__(self):
        self.calls, self.die = [], False

    def wants(self, event):
        return event.kind == EventKind.REDEEMED

    def required_stage(self, event):
        return AutomationStage.OBSERVE

    def describe(self, event):
        return f"tell the peer about event {event.pk}"

    def deliver(self, event, *, delivery, now):
        self.calls.append(delivery.idempotency_key)
        if self.die:
            raise WorkerKilled
        return {"ok": True}


def test_a_repeatable_destination_is_delivered_again_after_its_worker_died(glow, request):
    from memberships import services

    peer = outbox.register(RecordingPeer())
    request.addfinalizer(lambda: outbox._REGISTRY.pop(peer.name, None))
    tier, facial, _ = glow
    membership = active_membership(tier=tier)
    services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                idempotency_key="r1", now=T0)
    delivery = Delivery.objects.get(destination=peer.name)
    peer.die = True
    with pytest.raises(WorkerKilled):
        outbox.deliver_one(delivery.pk, now=T0)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0   # as if never taken

    peer.die = False
    outbox.dispatch_due(now=T0 + timedelta(seconds=1))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert peer.calls == [delivery.idempotency_key] * 2     # asked twice, with one key: it acts once
