"""A new card saved on the processor's hosted page (checkout.session.completed, setup mode) makes an
open dunning case pay its invoice now, with the new card."""

import pytest
from django.utils import timezone

from billing import dunning
from billing.models import DunningCaseStatus, DunningStep
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import AutomationStage
from tests.billing.fakes import FakeProcessor
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event, post_event

from .test_stripe_adapter import enroll, member_with_customer, recorded, stripe_at  # noqa: F401  (fixtures)


@pytest.fixture
def scripted_retries(settings):
    settings.DUNNING_PROCESSOR = "tests.billing.fakes.FakeProcessor"
    FakeProcessor.reset()
    yield FakeProcessor
    FakeProcessor.reset()


def test_card_saved_retries_the_open_case_now(stripe_at, client, glow, member_with_customer,  # noqa: F811
                                              scripted_retries):
    from integrations import outbox
    from integrations.processors.dunning import RetryOutcome
    from memberships import services

    tier, _, _ = glow
    tier.practice.automation_stage = AutomationStage.DUNNING
    tier.practice.save()
    m = enroll(member_with_customer, tier, sub=FIXTURE_SUBSCRIPTION)
    m = services.refill_entitlements(membership=m, cycle_key="in_first", actor=services.Actor.processor(),
                                     now=timezone.now())
    case = dunning.open_case_for_failure(membership=m, invoice_ref="in_open", amount_cents=19900,
                                         decline_code="expired_card", now=timezone.now())
    assert case.hard
    subscription = load_event("customer_subscription_updated_active.json", membership=m)["data"]["object"]
    stripe_at.expect_request("/v1/setup_intents/seti_1SXfixtureSetup001", method="GET").respond_with_json(
        recorded("setup_intent_succeeded.json", m))
    stripe_at.expect_request("/v1/customers/cus_TUfixture0001", method="POST").respond_with_json(
        {"id": "cus_TUfixture0001", "object": "customer",
         "invoice_settings": {"default_payment_method": "pm_1SXfixtureNewCard1"}})
    stripe_at.expect_request(f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}", method="POST").respond_with_json(
        dict(subscription, default_payment_method="pm_1SXfixtureNewCard1"))
    post_event(client, load_event("checkout_session_completed_setup.json", membership=m))
    inbox.process_due(now=timezone.now())
    assert InboundEvent.objects.get().status == InboundStatus.PROCESSED
    assert DunningStep.objects.filter(case=case, kind="retry", status="pending").count() == 1

    scripted_retries.will_answer("in_open", RetryOutcome.succeeded())
    now = timezone.now()
    dunning.run_dunning(now=now)
    outbox.dispatch_due(now=now)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and len(scripted_retries.charges) == 1
