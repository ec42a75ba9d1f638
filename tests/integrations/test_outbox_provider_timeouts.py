"""Twilio and SMTP take no idempotency key, so what a failure means depends on when it came: before a
connection was made the provider never had the message and it is retried; once the request went, a
lost answer (a read timeout, a server error, the line dropped during the message) may have sent it:
"may have been sent", never sent again by itself. Twilio is played by a local HTTP server, the mail
server by a local SMTP conversation, each with real sockets and the real client's timeouts."""

import socket
import socketserver
import threading
import time
from datetime import timedelta

import pytest

from billing.models import DunningMessage, MessageStatus
from integrations.models import Delivery, DeliveryStatus
from memberships.models import Event
from tests.billing.conftest import (  # noqa: F401  (fixtures)
    T0,
    dunning_practice,
    fail,
    fake_processor,
    member_factory,
    membership,
    tick,
)
from tests.support.twilio import PATH, fixture, twilio  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sms_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="sms")


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def case_lines(member, message):
    return list(Event.objects.filter(member=member, payload__message_id=message.pk).values_list("summary", flat=True))


def test_twilio_answering_too_late_may_have_sent_the_text_and_it_is_not_sent_again(twilio, membership, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 1

    def slow(request):
        time.sleep(2)                                  # Twilio has the request; its answer comes too late
        from werkzeug import Response
        return Response('{"sid": "SMlate", "status": "queued"}', status=201, content_type="application/json")

    twilio.expect_request(PATH, method="POST").respond_with_handler(slow)
    fail(membership)
    tick(T0)
    wait_for(lambda: len(twilio.log) == 1)
    for hours in (1, 6, 24):
        tick(T0 + timedelta(hours=hours))
    assert len(twilio.log) == 1                        # the member's phone rang at most once

    delivery = sms_delivery()
    message = DunningMessage.objects.get(channel="sms")
    assert delivery.status == DeliveryStatus.UNCERTAIN and "ReadTimeout" in delivery.last_error
    assert message.status == MessageStatus.UNCERTAIN and message.sent_at is None
    assert any(line.startswith("Card-update SMS may have been sent") for line in case_lines(membership.member, message))


def test_twilio_that_could_not_be_reached_is_tried_again_and_the_text_goes_once(twilio, membership, settings):
    settings.TWILIO_API_BASE = f"http://127.0.0.1:{closed_port()}"     # connection refused: nothing went
    fail(membership)
    tick(T0)
    delivery = sms_delivery()
    assert delivery.status == DeliveryStatus.RETRYING
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.PENDING

    settings.TWILIO_API_BASE = twilio.url_for("/")
    twilio.expect_request(PATH, method="POST").respond_with_json(fixture("message_queued.json"), status=201)
    tick(delivery.next_attempt_at)
    assert len(twilio.log) == 1
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.QUEUED


def test_a_twilio_server_error_on_sending_may_have_sent_it(twilio, membership):
    """Twilio: a 500 on sending a message may have sent it; retrying may text the member twice."""
    twilio.expect_request(PATH, method="POST").respond_with_json(fixture("error_20500.json"), status=500)
    fail(membership)
    for hours in (0, 1, 24):
        tick(T0 + timedelta(hours=hours))
    assert len(twilio.log) == 1
    assert sms_delivery().status == DeliveryStatus.UNCERTAIN
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.UNCERTAIN


class Smtp(socketserver.StreamRequestHandler):
    """Enough of an SMTP server: it takes every command; with `hang`, it keeps the message and never
    gives its final answer."""

    def handle(self):
        self.wfile.write(b"220 mail.example.com ESMTP\r\n")
        in_data = False
        for line in iter(self.rfile.readline, b""):
            if in_data:
                if line == b".\r\n":
                    self.server.received += 1
                    if self.server.hang:
                        time.sleep(self.server.hang)
                        return
                    self.wfile.write(b"250 2.0.0 queued\r\n")
                    in_data = False
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                in_data = True
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp(settings):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    server.daemon_threads, server.received, server.hang = True, 0, 0
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


def test_a_mail_server_that_kept_the_email_and_never_answered_may_have_sent_it(smtp, membership):
    smtp.hang = 2
    fail(membership)
    for hours in (0, 1, 24):
        tick(T0 + timedelta(hours=hours))
    assert smtp.received == 1
    message = DunningMessage.objects.get(channel="email")
    assert email_delivery().status == DeliveryStatus.UNCERTAIN
    assert message.status == MessageStatus.UNCERTAIN and message.sent_at is None
    lines = case_lines(membership.member, message)
    assert any(line.startswith("Card-update email may have been sent") for line in lines)


def test_a_mail_server_that_could_not_be_reached_is_tried_again(smtp, membership, settings):
    port = smtp.server_address[1]
    settings.EMAIL_PORT = closed_port()
    fail(membership)
    tick(T0)
    delivery = email_delivery()
    assert delivery.status == DeliveryStatus.RETRYING and smtp.received == 0
    settings.EMAIL_PORT = port
    tick(delivery.next_attempt_at)
    assert smtp.received == 1
    message = DunningMessage.objects.get(channel="email")
    assert message.status == MessageStatus.SENT and message.sent_at == delivery.next_attempt_at
