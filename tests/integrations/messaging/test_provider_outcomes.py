"""What the provider's answer means, the same for every member message — the card-update SMS and
email, the notices, the member-page link: Twilio or the mail server could not be reached (or said it
did not act: 429, 503, a temporary refusal) → tried again, and the message goes once; its answer was
lost after the request went → "may have been sent", never sent again by itself; it refused the
message for good (a bad number, a mailbox that does not exist) → failed at once, with why, never
asked again; the number opted out at Twilio (21610) → no more texts to it, recorded on the member,
not a failure. The provider is scripted here (its wire answers are in test_twilio_backend.py and
test_outbox_provider_timeouts.py)."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from billing.models import ChannelStatus, DunningMessage, MemberNotice, MessageStatus
from billing.notices import plan_notices
from integrations import outbox
from integrations.messaging import email as email_sender
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AutomationStage, Event, EventKind, Membership
from portal.me import links
from portal.models import LinkRequest
from tests.billing.conftest import T0, fail, tick
from tests.factories import MemberFactory, active_membership, ana_garcia

pytestmark = pytest.mark.django_db


@dataclass
class Provider:
    """Twilio and the mail server: the first time each message is asked for on a channel, the answer
    is `first[channel]` (an exception; none: it takes the message); asked again, it takes it. Counts
    the calls per channel."""

    first: dict = field(default_factory=dict)
    calls: dict = field(default_factory=lambda: {"sms": 0, "email": 0})
    seen: set = field(default_factory=set)

    def answer(self, channel, message, result):
        self.calls[channel] += 1
        failure = self.first.get(channel) if (channel, message) not in self.seen else None
        self.seen.add((channel, message))
        if failure is not None:
            raise failure
        return result


@pytest.fixture
def provider(monkeypatch):
    scripted = Provider()
    monkeypatch.setattr(sms, "send_sms", lambda *, to, body, status_callback="": scripted.answer(
        "sms", body, sms.SmsResult(provider_id=f"SMscripted{scripted.calls['sms']}", status="queued")))
    monkeypatch.setattr(email_sender, "send_email", lambda *, to, subject, body, message_ref: scripted.answer(
        "email", message_ref, message_ref))
    return scripted


def run_later(first_run):
    """The outbox's later runs: the retry when it falls due, then an hour and three hours on."""
    retry = Delivery.objects.filter(status=DeliveryStatus.RETRYING).values_list("next_attempt_at", flat=True)
    for moment in [*retry, first_run + timedelta(hours=1), first_run + timedelta(hours=3)]:
        outbox.dispatch_due(now=moment)


# --- the three destinations: send one message by `channel`, read back what its own record says ---

class CardUpdate:
    destination = "member_message"

    def __init__(self, member_factory):
        self.membership = member_factory()
        self.member = self.membership.member

    def send(self):
        fail(self.membership)
        tick(T0)
        return T0

    def records(self, channel):
        message = DunningMessage.objects.get(case__member=self.member, channel=channel)
        lines = Event.objects.filter(member=self.member, payload__message_id=message.pk).values_list("summary",
                                                                                                      flat=True)
        return [message.status], " ".join(lines)


class Notices:
    destination = "member_notice"

    def __init__(self, practice, glow):
        practice.automation_stage = AutomationStage.NOTICES
        practice.timezone = "America/Los_Angeles"
        practice.save()
        self.member = MemberFactory(practice=practice)
        held = active_membership(tier=glow[0], member=self.member, now=T0 - timedelta(days=25))
        Membership.objects.filter(pk=held.pk).update(current_period_end=T0 + timedelta(days=5))

    def send(self):
        plan_notices(now=T0)
        outbox.dispatch_due(now=T0)
        return T0

    def records(self, channel):
        notices = list(MemberNotice.objects.filter(member=self.member))
        assert notices
        return sorted({getattr(n, f"{channel}_status") for n in notices}), " ".join(n.note for n in notices)


class LinkSender:
    destination = "member_link"

    def __init__(self, glow):
        self.member, _ = ana_garcia(glow[0])

    def send(self, channel="email"):
        address = self.member.phone if channel == "sms" else self.member.email
        assert links.ask_for_link(raw_address=address, ip="203.0.113.9", now=T0) == links.OK
        links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=T0)
        outbox.dispatch_due(now=T0)
        return T0

    def records(self, channel):
        lines = Event.objects.filter(member=self.member, kind=EventKind.NOTE, payload__outcome__isnull=False)
        return [], " ".join(lines.values_list("summary", flat=True))


@pytest.fixture(params=["card update", "notices", "member link"])
def sender(request, practice, glow):
    if request.param == "card update":
        return CardUpdate(request.getfixturevalue("member_factory"))
    if request.param == "notices":
        return Notices(practice, glow)
    return LinkSender(glow)


def send(sender, channel):
    if isinstance(sender, LinkSender):
        first_run = sender.send(channel)
    else:
        first_run = sender.send()
    deliveries = Delivery.objects.filter(destination=sender.destination, event__payload__channel=channel)
    first = list(deliveries.values_list("status", flat=True))
    assert first, "nothing was queued on that channel"
    run_later(first_run)
    return first, list(deliveries.values_list("status", flat=True))


# What each destination's own record reads after the answer (the card-update message; the notice's
# channel). The member link keeps none: its timeline is asserted below.
SENT = {"sms": ([MessageStatus.QUEUED], [ChannelStatus.SENT]), "email": ([MessageStatus.SENT], [ChannelStatus.SENT])}


def own_record(sender, channel, *, card_update, notice):
    status, words = sender.records(channel)
    if isinstance(sender, CardUpdate):
        assert status == card_update
    elif isinstance(sender, Notices):
        assert status == notice
    return words


@pytest.mark.parametrize("channel,failure", [
    pytest.param("sms", sms.SmsUnavailable("twilio answered 503"), id="sms"),
    pytest.param("email", email_sender.EmailUnavailable("email refused by the server: SMTPRecipientsRefused"),
                 id="email"),
])
def test_a_provider_that_could_not_take_it_is_asked_again_and_the_message_goes_once(sender, provider, channel,
                                                                                  failure):
    provider.first[channel] = failure
    first, last = send(sender, channel)
    assert set(first) == {DeliveryStatus.RETRYING}
    assert set(last) == {DeliveryStatus.DELIVERED}
    assert provider.calls[channel] == 2 * len(last)            # the failed try, then the one that went
    card_update, notice = SENT[channel]
    own_record(sender, channel, card_update=card_update, notice=notice)


@pytest.mark.parametrize("channel,failure", [
    pytest.param("sms", sms.SmsMayHaveGone("twilio's answer was lost after the request went: ReadTimeout"), id="sms"),
    pytest.param("email", email_sender.EmailMayHaveGone("the mail server's answer was lost: TimeoutError"),
                 id="email"),
])
def test_a_lost_answer_reads_may_have_been_sent_and_is_never_sent_again(sender, provider, channel, failure):
    provider.first[channel] = failure
    first, last = send(sender, channel)
    assert set(first) == set(last) == {DeliveryStatus.UNCERTAIN}
    assert provider.calls[channel] == len(last)
    words = own_record(sender, channel, card_update=[MessageStatus.UNCERTAIN], notice=[ChannelStatus.UNCERTAIN])
    if isinstance(sender, LinkSender):
        assert "may have been sent" in words and "can ask for another link" in words
    elif isinstance(sender, CardUpdate):
        assert "may have been sent" in words


@pytest.mark.parametrize("channel,failure,on_the_case,on_the_notice", [
    pytest.param("sms", sms.SmsRejected("twilio refused the message (400, 21211)", code="21211"),
                 "SMS not delivered (21211)", "refused (21211)", id="sms-bad-number"),
    pytest.param("sms", sms.SmsError("unknown SMS_BACKEND 'twillio'; use console, locmem or twilio"),
                 "SMS not delivered", "refused", id="sms-no-backend"),
    pytest.param("email", email_sender.EmailRejected("the mail server refused the address (550)"),
                 "Email not delivered (the mail server refused the address)", "the mail server refused the address",
                 id="email-no-such-mailbox"),
])
def test_a_refusal_for_good_fails_at_once_with_why_and_is_never_asked_again(sender, provider, channel, failure,
                                                                            on_the_case, on_the_notice):
    provider.first[channel] = failure
    first, last = send(sender, channel)
    assert set(first) == set(last) == {DeliveryStatus.FAILED}
    assert provider.calls[channel] == len(last)
    assert set(Delivery.objects.filter(destination=sender.destination, event__payload__channel=channel)
               .values_list("last_error", flat=True)) == {str(failure)}
    words = own_record(sender, channel, card_update=[MessageStatus.FAILED], notice=[ChannelStatus.FAILED])
    if isinstance(sender, Notices):
        assert on_the_notice in words
    elif isinstance(sender, CardUpdate):
        assert on_the_case in words and "could not be reached" not in words


def test_a_number_opted_out_at_twilio_is_recorded_and_texted_no_more(sender, provider):
    provider.first["sms"] = sms.SmsRecipientOptedOut("recipient opted out", code="21610")
    first, last = send(sender, "sms")
    assert set(first) == set(last) == {DeliveryStatus.DELIVERED}
    answered, *after = (Delivery.objects.filter(destination=sender.destination, event__payload__channel="sms")
                        .order_by("id").values_list("result", flat=True))
    assert answered == {"opted_out": True, "error_code": "21610"}
    assert all("skipped" in result for result in after)        # a later text of the same run is not tried
    sender.member.refresh_from_db()
    assert sender.member.sms_opted_out_at == T0 and not sender.member.can_receive_sms
    assert list(Event.objects.filter(member=sender.member, kind=EventKind.SMS_OPTED_OUT)
                .values_list("summary", flat=True)) == ["SMS opt-out recorded (provider code 21610)"]
    own_record(sender, "sms", card_update=[MessageStatus.SKIPPED], notice=[ChannelStatus.SKIPPED])
    assert provider.calls["sms"] == 1


def test_a_member_link_asked_for_by_text_again_after_twilio_said_opted_out_is_not_texted(provider, glow):
    link = LinkSender(glow)
    provider.first["sms"] = sms.SmsRecipientOptedOut("recipient opted out", code="21610")
    link.send("sms")
    link.send("sms")
    assert provider.calls["sms"] == 1
    assert Delivery.objects.filter(destination="member_link").count() == 1    # no member matches that number now


def test_a_member_link_to_an_email_address_removed_before_it_went_is_not_sent(provider, glow):
    """Django's mail sends nothing to no address and says nothing: the link is not said to have gone."""
    link = LinkSender(glow)
    now = T0
    assert links.ask_for_link(raw_address=link.member.email, ip="203.0.113.9", now=now) == links.OK
    links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=now)
    type(link.member).objects.filter(pk=link.member.pk).update(email="")
    outbox.dispatch_due(now=now)
    delivery = Delivery.objects.get(destination="member_link")
    assert provider.calls["email"] == 0
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.result == {"skipped": "no email"}
