from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.core import mail

from billing import dunning
from integrations import outbox
from integrations.messaging import sms
from memberships.models import AutomationStage

from ..factories import MemberFactory, active_membership
from .fakes import FakeProcessor

UTC = dt_timezone.utc
# 10:00 in Los Angeles (PST, no DST change in the next weeks).
T0 = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fake_processor(settings):
    settings.DUNNING_PROCESSOR = "tests.billing.fakes.FakeProcessor"
    settings.SMS_BACKEND = "locmem"
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    settings.TWILIO_AUTH_TOKEN = "twilio-test-token"
    FakeProcessor.reset()
    sms.outbox.clear()
    sms.opted_out_numbers.clear()
    yield FakeProcessor
    FakeProcessor.reset()
    sms.outbox.clear()
    sms.opted_out_numbers.clear()


@pytest.fixture
def dunning_practice(practice):
    practice.automation_stage = AutomationStage.DUNNING
    practice.timezone = "America/Los_Angeles"
    practice.save()
    return practice


@pytest.fixture
def member_factory(dunning_practice, glow):
    tier = glow[0]

    def make(**kwargs):
        kwargs.setdefault("processor_customer_id", "cus_test")
        member = MemberFactory(practice=dunning_practice, **kwargs)
        return active_membership(tier=tier, member=member, now=T0 - timedelta(days=30))
    return make


@pytest.fixture
def membership(member_factory):
    return member_factory()


def tick(now):
    """One scheduled run at `now`: due steps, then the outbox, until nothing more is due."""
    for _ in range(10):
        done = dunning.run_dunning(now=now)
        sent = outbox.dispatch_due(now=now)
        if not any(k not in ("waiting",) for k in done) and not sent:
            return


def walk(start, end, step=None):
    """Move the clock from `start` to `end`, running at `start` and then at every moment something
    falls due (a step, an outbox retry) — or every `step` when given."""
    from django.db.models import Min

    from billing.models import DunningStep, StepStatus
    from integrations.models import Delivery, DeliveryStatus

    now = start
    while now <= end:
        tick(now)
        if step is not None:
            now += step
            continue
        candidates = [
            DunningStep.objects.filter(status=StepStatus.PENDING, due_at__gt=now).aggregate(m=Min("due_at"))["m"],
            Delivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
                                    next_attempt_at__gt=now).aggregate(m=Min("next_attempt_at"))["m"],
        ]
        upcoming = [c for c in candidates if c is not None]
        if not upcoming:
            return
        now = min(upcoming)


def sms_to(member):
    return [m for m in sms.outbox if m.to == member.phone]


def emails_to(member):
    return [m for m in mail.outbox if member.email in m.to]


def fail(membership, *, invoice="in_1", code="insufficient_funds", now=T0, amount=19900, **kwargs):
    return dunning.open_case_for_failure(membership=membership, invoice_ref=invoice, amount_cents=amount,
                                         currency="usd", decline_code=code, now=now, **kwargs)


from tests.integrations.conftest import localstripe, localstripe_server, stripe_env  # noqa: E402,F401
