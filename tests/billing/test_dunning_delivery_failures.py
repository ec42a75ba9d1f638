"""What happens to dunning when a delivery does not go through the first time: an SMS retried after a
Twilio failure never lands in the member's quiet hours, and a payment retry that could never reach
the processor neither leaves the case stuck nor disappears from the managers' view."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from billing.models import AttemptStatus, DunningAttempt, DunningCaseStatus, DunningMessage, MessageStatus
from integrations.models import Delivery, DeliveryStatus
from integrations.outbox import redeliver
from integrations.processors.dunning import RetryOutcome
from memberships.models import Event, EventKind, MembershipStatus
from tests.support.twilio import PATH, fixture, twilio  # noqa: F401  (fixture)

from .conftest import T0, emails_to, fail, sms_to, tick, walk

LA = ZoneInfo("America/Los_Angeles")
DAY = timedelta(days=1)


def at_la(day_offset, hour, minute=0):
    start = T0.astimezone(LA)
    return datetime(start.year, start.month, start.day, hour, minute, tzinfo=LA) + timedelta(days=day_offset)


def test_an_sms_retried_after_a_twilio_failure_waits_for_the_end_of_quiet_hours(twilio, membership,
                                                                              settings):  # noqa: F811
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 600          # the retry falls after 21:00
    opened = at_la(0, 20, 58)                            # two minutes before quiet hours
    twilio.expect_oneshot_request(PATH, method="POST").respond_with_json(fixture("error_20503.json"), status=503)
    fail(membership, now=opened)
    tick(opened)
    delivery = Delivery.objects.get(destination="member_message", event__payload__channel="sms")
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 1
    retry_at = delivery.next_attempt_at
    assert retry_at.astimezone(LA).hour == 21           # Twilio's backoff lands in quiet hours

    twilio.expect_request(PATH, method="POST").respond_with_json(fixture("message_queued.json"), status=201)
    tick(retry_at)
    delivery.refresh_from_db()
    assert len(twilio.log) == 1                          # nothing sent at night
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 1   # deferral spends no attempt
    assert delivery.next_attempt_at == at_la(1, 8)
    assert DunningMessage.objects.get(channel="sms").status == MessageStatus.PENDING

    walk(retry_at + timedelta(minutes=30), at_la(1, 7, 30), step=timedelta(minutes=30))
    assert len(twilio.log) == 1
    tick(at_la(1, 8))
    message = DunningMessage.objects.get(channel="sms")
    assert len(twilio.log) == 2 and message.status == MessageStatus.QUEUED
    assert message.sent_at.astimezone(LA).strftime("%H:%M") == "08:00"
    assert len(emails_to(membership.member)) == 1        # email was never held back


def _retry_deliveries(status):
    return Delivery.objects.filter(destination="payment_retry", status=status)


def test_a_dead_lettered_retry_is_a_failed_attempt_and_the_case_goes_on(membership, fake_processor, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    member = membership.member
    fake_processor.will_answer("in_1", RetryOutcome.succeeded())
    case = fail(membership)
    tick(T0)
    fake_processor.down = True                           # the processor is unreachable all through day 3
    walk(T0 + 3 * DAY, T0 + 3 * DAY + timedelta(hours=1))
    dead = _retry_deliveries(DeliveryStatus.DEAD).get()
    assert dead.attempts == 3 and "503" in dead.last_error
    attempt = DunningAttempt.objects.get(case=case)
    assert attempt.status == AttemptStatus.FAILED and attempt.decline_code == "processor_unreachable"
    # The step's reminder did not wait out the retry: it went as soon as the retry was given up.
    assert len(sms_to(member)) == 2
    assert Event.objects.filter(member=member, kind=EventKind.DUNNING_ATTEMPT,
                                summary__contains="could not reach the processor").count() == 1
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN and not case.hard

    fake_processor.down = False                          # day 5: the next scheduled retry pays
    walk(T0 + 3 * DAY + timedelta(hours=1), T0 + 14 * DAY)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and case.closed_at == T0 + 5 * DAY
    assert [a.status for a in DunningAttempt.objects.filter(case=case).order_by("number")] == [
        AttemptStatus.FAILED, AttemptStatus.PAID]
    assert _retry_deliveries(DeliveryStatus.DEAD).count() == 1     # still there for a manager


def test_a_dead_lettered_last_retry_follows_the_exhaustion_rule(membership, fake_processor, settings,
                                                                admin_client):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    fake_processor.down = True
    case = fail(membership)
    walk(T0, T0 + 14 * DAY)
    case.refresh_from_db()
    # exhausted on day 7 once the last retry was given up, not 6 hours later when the wait runs out
    assert case.status == DunningCaseStatus.EXHAUSTED and case.closed_at < T0 + 7 * DAY + timedelta(hours=1)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.LAPSED
    assert set(DunningAttempt.objects.filter(case=case).values_list("decline_code", flat=True)) == {
        "processor_unreachable"}
    assert fake_processor.charges == []
    page = admin_client.get("/admin/integrations/delivery/?status__exact=dead&destination=payment_retry")
    assert page.status_code == 200
    assert page.content.decode().count("processor answered 503") == 3


def test_a_manager_redelivers_a_dead_lettered_retry_and_it_pays(membership, fake_processor, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    fake_processor.will_answer("in_1", RetryOutcome.succeeded())
    case = fail(membership)
    tick(T0)
    fake_processor.down = True
    walk(T0 + 3 * DAY, T0 + 3 * DAY + timedelta(hours=1))
    dead = _retry_deliveries(DeliveryStatus.DEAD).get()
    assert DunningAttempt.objects.get(case=case).status == AttemptStatus.FAILED
    fake_processor.down = False
    redeliver(dead, now=T0 + 4 * DAY)
    tick(T0 + 4 * DAY)
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.DELIVERED
    assert DunningAttempt.objects.get(case=case).status == AttemptStatus.PAID
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    assert len(fake_processor.charges) == 1
