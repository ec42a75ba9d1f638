"""Twilio and SMTP take no idempotency key, so what a failure means depends on when it came: before a
connection was made the provider never had the message and it is retried; once the request went, a
lost answer (a read timeout, a server error, the line dropped during the message) may have sent it:
"may have been sent", never sent again by itself. Twilio is played by a local HTTP server, the mail
server by a local SMTP conversation, each with real sockets and the real client's timeouts."""

import threading
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
from tests.support.local_servers import closed_port, smtp  # noqa: F401  (fixture)
from tests.support.twilio import PATH, fixture, twilio  # noqa: F401  (fixture)
from tests.support.waiting import PATIENCE, wait_until

pytestmark = pytest.mark.django_db


def sms_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="sms")


def case_lines(member, message):
    return list(Event.objects.filter(member=member, payload__message_id=message.pk).values_list("summary", flat=True))


def test_twilio_answering_too_late_may_have_sent_the_text_and_it_is_not_sent_again(twilio, membership, settings):
    settings.TWILIO_TIMEOUT_SECONDS = 1
    gave_up = threading.Event()

    def slow(request):
        gave_up.wait(PATIENCE)                         # Twilio has the request; its answer comes too late
        from werkzeug import Response
        return Response('{"sid": "SMlate", "status": "queued"}', status=201, content_type="application/json")

    twilio.expect_request(PATH, method="POST").respond_with_handler(slow)
    fail(membership)
    try:
        tick(T0)
    finally:
        gave_up.set()
    assert wait_until(lambda: len(twilio.log) == 1)
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


def email_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="email")


def test_a_mail_server_that_kept_the_email_and_never_answered_may_have_sent_it(smtp, membership, settings):
    smtp.hang = True
    settings.EMAIL_TIMEOUT = 3
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
