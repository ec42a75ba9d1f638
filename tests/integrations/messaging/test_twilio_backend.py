"""The twilio SDK against a local stand-in for api.twilio.com (pytest-httpserver) answering with
the documented Message resource and error bodies."""

from datetime import timedelta
from urllib.parse import parse_qs

from django.core import mail

from billing.models import DunningMessage, MessageStatus
from integrations.models import Delivery, DeliveryStatus
from memberships.models import Event, EventKind
from tests.billing.conftest import T0, fail, tick
from tests.support.twilio import PATH, fixture


def test_sms_goes_through_the_twilio_api(twilio, membership):
    member = membership.member
    twilio.expect_request(PATH, method="POST").respond_with_json(
        {**fixture("message_queued.json"), "to": member.phone}, status=201)
    fail(membership)
    tick(T0)
    request, _ = twilio.log[0]
    form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
    assert form["To"] == member.phone and form["From"] == "+15005550006"
    assert form["StatusCallback"] == "https://ledger.example.com/webhooks/twilio/status/"
    assert "https://ledger.example.com/billing/card/" in form["Body"]
    assert request.headers["Authorization"].startswith("Basic ")
    message = DunningMessage.objects.get(channel="sms")
    assert message.provider_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert message.status == MessageStatus.QUEUED and message.sent_at == T0


def test_21610_records_the_opt_out_and_falls_back_to_email(twilio, member_factory, dunning_practice):
    from billing.dunning.policy import update_dunning_policy
    from memberships.services import Actor

    # A policy whose first step is SMS only, so the fallback email is the member's only message.
    update_dunning_policy(practice=dunning_practice, changes={"step_channels": ["sms", "sms", "email", "both"]},
                          actor=Actor.system(), now=T0)
    membership = member_factory()
    member = membership.member
    twilio.expect_request(PATH, method="POST").respond_with_json(fixture("error_21610.json"), status=400)
    fail(membership)
    tick(T0)
    member.refresh_from_db()
    assert member.sms_opted_out_at is not None
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.SKIPPED
    assert [m.to for m in mail.outbox] == [[member.email]]
    assert Event.objects.filter(member=member, kind=EventKind.SMS_OPTED_OUT).count() == 1
    # No more attempts at that number.
    tick(T0 + timedelta(days=3))
    assert len(twilio.log) == 1


def test_twilio_unavailable_is_retried_later(twilio, membership):
    """503 (20503, "temporarily unavailable: try again"): Twilio did not take the message."""
    twilio.expect_oneshot_request(PATH, method="POST").respond_with_json(fixture("error_20503.json"), status=503)
    fail(membership)
    tick(T0)
    delivery = Delivery.objects.get(destination="member_message", event__payload__channel="sms")
    assert delivery.status == DeliveryStatus.RETRYING
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.PENDING
    twilio.expect_request(PATH, method="POST").respond_with_json(fixture("message_queued.json"), status=201)
    tick(delivery.next_attempt_at)
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.QUEUED
    assert len(twilio.log) == 2
