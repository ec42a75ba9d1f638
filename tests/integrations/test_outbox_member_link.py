"""A member-page link is a member message like the others: once the provider has it, a stop or a
failure never sends it twice by itself; the member's timeline says "may have been sent" and that
the member can ask for another link (each works once, for a few minutes). A manager's redelivery
resends it only while it can still open the page."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus
from memberships.models import Event, EventKind
from portal.me import delivery as link_delivery
from portal.me import links
from portal.models import LinkRequest, MemberLink
from tests.factories import ana_garcia

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for SIGKILL: no `except Exception` of ours sees it; every open transaction rolls back."""


class SmtpAcceptsThenTheWorkerDies(EmailBackend):
    def send_messages(self, messages):
        super().send_messages(messages)         # the mail server has it
        raise WorkerKilled


@pytest.fixture
def ana(glow):
    member, _ = ana_garcia(glow[0])
    return member


def ask(member, now):
    assert links.ask_for_link(raw_address=member.email, ip="203.0.113.9", now=now) == links.OK
    links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=now)
    return Delivery.objects.get(destination="member_link")


def link_emails(member):
    return [m for m in mail.outbox if member.email in m.to and "/me/open/" in m.body]


def timeline(member):
    return list(Event.objects.filter(member=member, kind=EventKind.NOTE, payload__outcome__isnull=False)
                .values_list("summary", flat=True))


def test_a_link_the_mail_server_took_before_its_worker_died_is_not_sent_again(ana, settings):
    now = timezone.now()
    mail.outbox.clear()
    delivery = ask(ana, now)
    settings.EMAIL_BACKEND = f"{__name__}.SmtpAcceptsThenTheWorkerDies"
    with pytest.raises(WorkerKilled):
        outbox.deliver_one(delivery.pk, now=now)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    later = now + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS + 1)
    for minutes in (0, 5, 60):
        outbox.dispatch_due(now=later + timedelta(minutes=minutes))
    assert len(link_emails(ana)) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNCERTAIN
    [line] = timeline(ana)
    assert line.startswith("Member page link by email may have been sent")
    assert "can ask for another link" in line and "works once, for 15 minutes" in line


def test_a_link_twilio_accepted_whose_recording_then_failed_is_not_texted_again(ana, settings, monkeypatch):
    """After Twilio accepted the text, anything failing on our side means it may have gone: the
    member is not texted a second link by a retry."""
    from integrations.messaging import sms

    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    ana.sms_consent = True
    ana.save()
    now = timezone.now()
    assert links.ask_for_link(raw_address=ana.phone, ip="203.0.113.9", now=now) == links.OK
    links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=now)
    delivery = Delivery.objects.get(destination="member_link")

    class Broken:
        def info(self, *args, **kwargs):
            raise RuntimeError("the log could not be written")

    monkeypatch.setattr(link_delivery, "logger", Broken())
    for minutes in (0, 5, 60):
        outbox.dispatch_due(now=now + timedelta(minutes=minutes))
    assert len([m for m in sms.outbox if m.to == ana.phone]) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNCERTAIN
    [line] = timeline(ana)
    assert line.startswith("Member page link by SMS may have been sent")
    sms.outbox.clear()


def test_a_manager_cannot_resend_a_link_that_expired_and_is_told_why(ana, settings):
    now = timezone.now()
    delivery = ask(ana, now)
    settings.EMAIL_BACKEND = f"{__name__}.SmtpAcceptsThenTheWorkerDies"
    with pytest.raises(WorkerKilled):
        outbox.deliver_one(delivery.pk, now=now)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    outbox.sweep_sending(now=now + timedelta(seconds=settings.OUTBOX_SENDING_TIMEOUT_SECONDS + 1))
    mail.outbox.clear()

    with pytest.raises(outbox.RedeliveryRefused) as refused:
        outbox.redeliver(Delivery.objects.get(pk=delivery.pk), now=now + timedelta(minutes=20))
    assert "has expired" in str(refused.value) and "ask for a new one" in str(refused.value)
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.UNCERTAIN

    assert outbox.redeliver(Delivery.objects.get(pk=delivery.pk), now=now + timedelta(minutes=5))   # still valid
    outbox.dispatch_due(now=now + timedelta(minutes=5))
    assert len(link_emails(ana)) == 1 and MemberLink.objects.count() == 1
