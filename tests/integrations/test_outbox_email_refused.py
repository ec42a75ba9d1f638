"""A mail server that refuses the member's address for good (a 5xx answer to the recipient: no such
mailbox) kept nothing, and asking again gets the same answer: the card-update email or the notice
reads failed at once with why, for the desk to put the address right and a manager to redeliver —
not retried for hours and then said to have failed because the provider "could not be reached". A
temporary refusal (4xx: mailbox busy, try later) is still tried again."""

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
from tests.support.local_servers import smtp  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def refusing_smtp(smtp):  # noqa: F811  (the fixture it wraps)
    """The mail server, refusing every recipient for good (no such mailbox) unless a test says otherwise."""
    smtp.rcpt_reply = b"550 5.1.1 no such mailbox\r\n"
    return smtp


def email_delivery():
    return Delivery.objects.get(destination="member_message", event__payload__channel="email")


def test_an_address_the_mail_server_refuses_reads_failed_at_once_with_why(refusing_smtp, membership):
    fail(membership)
    tick(T0)
    delivery = email_delivery()
    assert delivery.status == DeliveryStatus.FAILED and refusing_smtp.rcpts == 1
    message = DunningMessage.objects.get(channel="email")
    assert message.status == MessageStatus.FAILED
    lines = case_lines(membership.member, message)
    assert any("refused the address" in line for line in lines), lines
    assert not any("could not be reached" in line for line in lines)
    for hours in (1, 6, 24):
        tick(T0 + timedelta(hours=hours))
    assert refusing_smtp.rcpts == 1


def test_a_mailbox_busy_for_now_is_tried_again(refusing_smtp, membership):
    refusing_smtp.rcpt_reply = b"452 4.2.2 mailbox busy, try later\r\n"
    fail(membership)
    tick(T0)
    delivery = email_delivery()
    assert delivery.status == DeliveryStatus.RETRYING
    assert DunningMessage.objects.get(channel="email").status == MessageStatus.PENDING


def test_a_notice_to_a_refused_address_reads_failed_with_why(refusing_smtp, practice, glow, settings):
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
    assert refusing_smtp.rcpts == len(sent)


def test_a_member_page_link_to_an_address_the_mail_server_refuses_fails_at_once(refusing_smtp, glow):
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
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1 and refusing_smtp.rcpts == 1
    assert "refused" in delivery.last_error or "550" in delivery.last_error
