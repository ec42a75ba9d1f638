"""A join paid on Stripe Checkout by a method that settles later, as Stripe documents it: the session
completes with `payment_status` "unpaid", then `checkout.session.async_payment_succeeded` ("Occurs
when a payment intent using a delayed payment method finally succeeds") or
`checkout.session.async_payment_failed` ("... fails") carries the session again. The join's session
leaves the payment methods to the practice's Dashboard, so a practice that enables a bank debit gets
such joins. Events built from the recorded session (tests/support/checkout.py) and read back with the
SDK's own `stripe.Event` / `stripe.checkout.Session`."""

import copy
from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from integrations.processors.base import CheckoutCompleted, IgnoredEvent
from integrations.processors.stripe_events import parse_event
from memberships.models import EntitlementBalance, JoinAttempt, Membership, MembershipStatus
from tests.portal.join_support import form, online, processor  # noqa: F401  (fixtures)
from tests.support.checkout import completed_event, completed_session
from tests.support.stripe_events import load_event, post_event

pytestmark = pytest.mark.django_db

SUB = "sub_join0001"


def session_event(attempt_ref: str, *, etype: str, payment_status: str, event_id: str, created: int) -> dict:
    session = dict(completed_session(join_ref=attempt_ref, session_id="cs_test_fake0001", subscription_ref=SUB),
                   payment_status=payment_status)
    event = completed_event(session, event_id=event_id, created=created)
    event["type"] = etype
    parsed = stripe.Event.construct_from(copy.deepcopy(event), "sk_test")
    assert parsed.type == etype and parsed.data.object.payment_status == payment_status
    assert stripe.checkout.Session.construct_from(copy.deepcopy(session), "sk_test").status == "complete"
    return event


def completed_unpaid(ref):
    return session_event(ref, etype="checkout.session.completed", payment_status="unpaid",
                         event_id="evt_join_completed_unpaid", created=1764000100)


def settled(ref):
    return session_event(ref, etype="checkout.session.async_payment_succeeded", payment_status="paid",
                         event_id="evt_join_settled", created=1764300100)


def not_settled(ref):
    return session_event(ref, etype="checkout.session.async_payment_failed", payment_status="unpaid",
                         event_id="evt_join_not_settled", created=1764300100)


def start(client, online):
    assert client.post("/join/glow/", form(online), REMOTE_ADDR="203.0.113.9").status_code == 302
    return JoinAttempt.objects.get()


def drain():
    return inbox.process_due(now=timezone.now())


def purge(settings):
    from portal.join.tasks import purge_abandoned_joins_task

    JoinAttempt.objects.update(created_at=timezone.now() - timedelta(hours=settings.JOIN_ATTEMPT_RETENTION_HOURS + 1))
    return purge_abandoned_joins_task()


def test_each_checkout_event_states_what_stripe_says_of_the_payment():
    assert isinstance(parse_event(completed_unpaid("jn_x")).fact, IgnoredEvent)
    assert isinstance(parse_event(not_settled("jn_x")).fact, IgnoredEvent)
    assert parse_event(settled("jn_x")).fact == CheckoutCompleted(
        processor="stripe", checkout_ref="cs_test_fake0001", join_ref="jn_x", customer_ref="cus_join0001",
        subscription_ref=SUB, event_created=1764300100)


def test_a_join_paid_by_a_bank_debit_enrolls_when_the_payment_settles_days_later(client, online, processor,
                                                                                 settings):
    attempt = start(client, online)
    post_event(client, completed_unpaid(attempt.ref))
    drain()
    assert not Membership.objects.exists()                    # not paid yet: nothing enrolled
    page = client.get(f"/join/glow/done/{attempt.ref}/").content.decode()
    assert "takes a few business days to clear" in page and "within a few minutes" not in page
    post_event(client, load_event("invoice_paid_first.json", subscription_ref=SUB))   # unrelated join on file
    assert purge(settings) == 0                               # the days of settling outlive the hourly purge
    post_event(client, settled(attempt.ref))
    drain()
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE and membership.processor_subscription_id == SUB
    assert {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)} == \
        {"hydrafacial": 1, "product-credit": 5000}
    assert "Your membership is active" in client.get(f"/join/glow/done/{attempt.ref}/").content.decode()
    assert InboundEvent.objects.get(event_id="evt_join_settled").status == InboundStatus.PROCESSED


def test_a_delayed_payment_that_fails_enrolls_no_one_and_the_join_then_goes(client, online, processor, settings):
    attempt = start(client, online)
    post_event(client, completed_unpaid(attempt.ref))
    post_event(client, not_settled(attempt.ref))
    drain()
    assert not Membership.objects.exists()
    assert purge(settings) == 1 and not JoinAttempt.objects.exists()
