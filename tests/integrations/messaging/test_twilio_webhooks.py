"""Twilio's signed webhooks: STOP/START recorded at once, status callbacks only move forward, and a
bad signature gets 403 and changes nothing."""

from datetime import timedelta

from django.conf import settings
from twilio.request_validator import RequestValidator

from billing.models import DunningMessage, MessageStatus
from integrations.models import InboundEvent
from memberships.models import Event, EventKind
from tests.billing.conftest import T0, fail, tick
from tests.support.twilio import post_signed


def test_bad_signature_is_refused_and_changes_nothing(client, membership):
    member = membership.member
    params = {"MessageSid": "SM1", "From": member.phone, "Body": "STOP"}
    for signature in ("not-a-signature", None):
        kwargs = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature else {}
        assert client.post("/webhooks/twilio/inbound/", params, **kwargs).status_code == 403
    assert post_signed(client, "/webhooks/twilio/inbound/", params, token="another-token").status_code == 403
    # Signed for other parameters than the ones sent:
    url = settings.PUBLIC_BASE_URL + "/webhooks/twilio/inbound/"
    forged = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, {**params, "Body": "hello"})
    assert client.post("/webhooks/twilio/inbound/", params, HTTP_X_TWILIO_SIGNATURE=forged).status_code == 403
    assert client.post("/webhooks/twilio/status/", {"MessageSid": "SM1", "MessageStatus": "delivered"},
                       HTTP_X_TWILIO_SIGNATURE="bad").status_code == 403
    member.refresh_from_db()
    assert member.sms_opted_out_at is None
    assert not InboundEvent.objects.exists()
    assert not Event.objects.filter(kind=EventKind.SMS_OPTED_OUT).exists()


def test_stop_then_start(client, membership):
    member = membership.member
    fail(membership)
    tick(T0)  # the member has had our card-update SMS
    response = post_signed(client, "/webhooks/twilio/inbound/",
                           {"MessageSid": "SM_a", "From": member.phone, "Body": " stop "})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    member.refresh_from_db()
    assert member.sms_opted_out_at is not None and not member.can_receive_sms
    # The same webhook again (Twilio retries): recorded once.
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_a", "From": member.phone, "Body": "STOP"})
    assert Event.objects.filter(member=member, kind=EventKind.SMS_OPTED_OUT).count() == 1
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_b", "From": member.phone, "Body": "START"})
    member.refresh_from_db()
    assert member.can_receive_sms
    assert InboundEvent.objects.filter(source="twilio").count() == 2
    assert all("From" not in e.payload for e in InboundEvent.objects.all())  # no phone numbers kept


def test_start_never_gives_consent_that_was_not_on_file(client, member_factory):
    """TCPA: a START/YES from a member who never consented (in any practice) gives no consent."""
    from tests.factories import MemberFactory, PracticeFactory

    membership = member_factory(sms_consent=False)
    member = membership.member
    elsewhere = MemberFactory(practice=PracticeFactory(), phone=member.phone, sms_consent=False)
    for sid, word in (("SM_y", "YES"), ("SM_s", "START")):
        post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": sid, "From": member.phone, "Body": word})
    for someone in (member, elsewhere):
        someone.refresh_from_db()
        assert not someone.sms_consent and not someone.can_receive_sms
    assert not Event.objects.filter(kind=EventKind.SMS_OPTED_IN).exists()
    fail(membership)
    tick(T0)
    assert DunningMessage.objects.filter(channel="sms").count() == 0  # still no SMS to them


def test_stop_reaches_every_member_on_the_phone_start_only_those_we_texted(client, membership):
    """One Twilio number serves every practice: STOP applies to every member with that phone at once;
    START lifts the opt-out only for members who had consented and were texted by us."""
    from tests.factories import MemberFactory, PracticeFactory

    member = membership.member
    fail(membership)
    tick(T0)
    elsewhere = MemberFactory(practice=PracticeFactory(), phone=member.phone, sms_consent=True)
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_1", "From": member.phone, "Body": "STOP"})
    for someone in (member, elsewhere):
        someone.refresh_from_db()
        assert not someone.can_receive_sms
    post_signed(client, "/webhooks/twilio/inbound/", {"MessageSid": "SM_2", "From": member.phone, "Body": "START"})
    member.refresh_from_db()
    elsewhere.refresh_from_db()
    assert member.can_receive_sms
    assert not elsewhere.can_receive_sms and elsewhere.sms_opted_out_at is not None


def test_ordinary_reply_changes_nothing(client, membership):
    member = membership.member
    post_signed(client, "/webhooks/twilio/inbound/",
                {"MessageSid": "SM_c", "From": member.phone, "Body": "Please stop texting me so late"})
    member.refresh_from_db()
    assert member.can_receive_sms


def test_status_callbacks_only_move_forward(client, membership):
    fail(membership)
    tick(T0)
    message = DunningMessage.objects.get(channel="sms")
    sid = message.provider_id
    assert sid and message.status == MessageStatus.QUEUED
    for status in ("sent", "delivered", "sent", "queued"):
        assert post_signed(client, "/webhooks/twilio/status/",
                           {"MessageSid": sid, "MessageStatus": status}).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    post_signed(client, "/webhooks/twilio/status/", {"MessageSid": "SM_unknown", "MessageStatus": "failed"})


def test_status_callback_with_21610_records_the_opt_out(client, membership):
    member = membership.member
    fail(membership)
    tick(T0)
    sid = DunningMessage.objects.get(channel="sms").provider_id
    post_signed(client, "/webhooks/twilio/status/", {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"})
    member.refresh_from_db()
    assert member.sms_opted_out_at is not None
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.FAILED
    tick(T0 + timedelta(days=3))
    assert DunningMessage.objects.filter(channel="sms").count() == 1
