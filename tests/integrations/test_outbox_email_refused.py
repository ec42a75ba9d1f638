"""A mail server that refuses the member's address for good (a 5xx answer to the recipient: no such
mailbox) kept nothing, and asking again gets the same answer: the card-update email or the notice
reads failed at once with why, for the desk to put the address right and a manager to redeliver —
not retried for hours and then said to have failed because the provider "could not be reached". A
temporary refusal (4xx: mailbox busy, try later) is still tried again."""

import socketserver
import threading
from datetime import timedelta

import pytest

from billing.models import ChannelStatus, DunningMessage, MemberNotice, MessageStatus
from billing.notices import plan_notices
from integrations import outbox
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AutomationStage, Membership
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
    membership,
    tick,
)
from tests.factories import MemberFactory, active_membership
from tests.integrations.test_outbox_provider_timeouts import case_lines

pytestmark = pytest.mark.django_db


class RefusingSmtp(socketserver.StreamRequestHandler):
    """An SMTP server that answers the recipient with `server.rcpt_reply` and takes the rest."""

    def handle(self):
        self.wfile.write(b"220 mail.example.com ESMTP\r\n")
        for line in iter(self.rfile.readline, b""):
            verb = line[:4].upper()
            if verb == b"RCPT":
                self.server.rcpts += 1
                self.wfile.write(self.server.rcpt_reply)
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp(settings):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RefusingSmtp)
    server.daemon_threads, server.rcpts = True, 0
    server.rcpt_reply = b"550 5.1.1 no such mailbox\r\n"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    yield server
    server.shutdown()
    server.server_close()


def email_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="email")


def test_an_address_the_mail_server_refuses_reads_failed_at_once_with_why(smtp, membership):
    fail(membership)
    tick(T0)
    delivery = email_delivery()
    assert delivery.status == DeliveryStatus.FAILED and smtp.rcpts == 1
    message = DunningMessage.objects.get(channel="email")
    assert message.status == MessageStatus.FAILED
    lines = case_lines(membership.member, message)
    assert any("refused the address" in line for line in lines), lines
    assert not any("could not be reached" in line for line in lines)
    for hours in (1, 6, 24):
        tick(T0 + timedelta(hours=hours))
    assert smtp.rcpts == 1


def test_a_mailbox_busy_for_now_is_tried_again(smtp, membership):
    smtp.rcpt_reply = b"452 4.2.2 mailbox busy, try later\r\n"
    fail(membership)
    tick(T0)
    delivery = email_delivery()
    assert delivery.status == DeliveryStatus.RETRYING
    assert DunningMessage.objects.get(channel="email").status == MessageStatus.PENDING


def test_a_notice_to_a_refused_address_reads_failed_with_why(smtp, practice, glow, settings):
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    practice.automation_stage = AutomationStage.NOTICES
    practice.timezone = "America/Los_Angeles"
    practice.save()
    member = MemberFactory(practice=practice, sms_consent=False)
    held = active_membership(tier=glow[0], member=member, now=T0 - timedelta(days=25))
    Membership.objects.filter(pk=held.pk).update(current_period_end=T0 + timedelta(days=5))
    plan_notices(now=T0)
    outbox.dispatch_due(now=T0)
    sent = list(MemberNotice.objects.filter(member=member))
    assert sent and all(n.email_status == ChannelStatus.FAILED and "refused the address" in n.note for n in sent)
    assert set(Delivery.objects.filter(destination="member_notice").values_list("status", flat=True)) == {
        DeliveryStatus.FAILED}
    assert smtp.rcpts == len(sent)


def test_a_member_page_link_to_an_address_the_mail_server_refuses_fails_at_once(smtp, glow):
    """The member asked for a link by email; the server refuses the address for good: the delivery
    fails at once (one try), not retried for hours."""
    from django.utils import timezone

    from portal.me import links
    from portal.models import LinkRequest
    from tests.factories import ana_garcia

    member, _ = ana_garcia(glow[0])
    now = timezone.now()
    assert links.ask_for_link(raw_address=member.email, ip="203.0.113.9", now=now) == links.OK
    links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=now)
    delivery = Delivery.objects.get(destination="member_link")
    outbox.dispatch_due(now=now + timedelta(seconds=1))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1 and smtp.rcpts == 1
    assert "refused" in delivery.last_error or "550" in delivery.last_error
