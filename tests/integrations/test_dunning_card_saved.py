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
from tests.support.stripe_recorded import enroll, post_card_saved


@pytest.fixture
def scripted_retries(settings):
    settings.DUNNING_PROCESSOR = "tests.billing.fakes.FakeProcessor"
    FakeProcessor.reset()
    yield FakeProcessor
    FakeProcessor.reset()


def _open_hard_case(tier, member, *, decline_code="stolen_card"):
    from memberships import services

    tier.practice.automation_stage = AutomationStage.DUNNING
    tier.practice.save()
    m = enroll(member, tier, sub=FIXTURE_SUBSCRIPTION)
    m = services.refill_entitlements(membership=m, cycle_key="in_first", actor=services.Actor.processor(),
                                     now=timezone.now())
    return dunning.open_case_for_failure(membership=m, invoice_ref="in_open", amount_cents=19900,
                                         decline_code=decline_code, now=timezone.now())


def _paid_by_the_retry(case, scripted_retries) -> bool:
    """The scheduled run and the outbox, the processor paying: recovered with exactly one charge."""
    from integrations import outbox
    from integrations.processors.dunning import RetryOutcome

    scripted_retries.will_answer("in_open", RetryOutcome.succeeded())
    now = timezone.now()
    dunning.run_dunning(now=now)
    outbox.dispatch_due(now=now)
    case.refresh_from_db()
    return case.status == DunningCaseStatus.RECOVERED and len(scripted_retries.charges) == 1


def test_card_saved_retries_the_open_case_now(stripe_at, client, glow, member_with_customer,  # noqa: F811
                                              scripted_retries):
    tier, _, _ = glow
    case = _open_hard_case(tier, member_with_customer, decline_code="expired_card")
    m = case.membership
    assert case.hard
    post_card_saved(stripe_at, client, m)
    inbox.process_due(now=timezone.now())
    assert InboundEvent.objects.get().status == InboundStatus.PROCESSED
    assert DunningStep.objects.filter(case=case, kind="retry", status="pending").count() == 1

    assert _paid_by_the_retry(case, scripted_retries)


def test_a_new_default_card_reported_by_stripe_retries_the_open_case_once(client, glow, member_with_customer,  # noqa: F811
                                                                          scripted_retries):
    """The Billing Portal's card update arrives as customer.updated with the invoice default payment
    method in previous_attributes: one retry for that card, however often it is reported."""
    tier, _, _ = glow
    case = _open_hard_case(tier, member_with_customer)
    event = load_event("customer_updated_default_card.json")
    assert post_event(client, event).status_code == 200
    assert post_event(client, event).status_code == 200                          # Stripe's duplicate
    assert post_event(client, dict(event, id=event["id"] + "_again")).status_code == 200  # same card again
    inbox.process_due(now=timezone.now())
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
    assert InboundEvent.objects.filter(practice=tier.practice).count() == 2
    steps = DunningStep.objects.filter(case=case, kind="retry")
    assert steps.count() == 1 and "pm_1SXfixturePortal01" in steps.get().note

    assert _paid_by_the_retry(case, scripted_retries)


def test_a_customer_update_without_a_new_default_card_retries_nothing(client, glow, member_with_customer,  # noqa: F811
                                                                      scripted_retries):
    tier, _, _ = glow
    case = _open_hard_case(tier, member_with_customer)
    email_only = load_event("customer_updated_default_card.json")
    email_only["data"]["previous_attributes"] = {"email": None}
    removed = load_event("customer_updated_default_card.json", event_suffix="_removed")
    removed["data"]["object"]["invoice_settings"]["default_payment_method"] = None
    for event in (email_only, removed):
        assert post_event(client, event).status_code == 200
    inbox.process_due(now=timezone.now())
    assert list(InboundEvent.objects.values_list("status", flat=True)) == [InboundStatus.IGNORED] * 2
    assert not DunningStep.objects.filter(case=case, kind="retry").exists()


def test_a_customer_id_shared_by_two_members_fails_the_event_for_a_manager(client, glow, member_with_customer,  # noqa: F811
                                                                           scripted_retries):
    from tests.factories import MemberFactory

    tier, _, _ = glow
    case = _open_hard_case(tier, member_with_customer)
    MemberFactory(practice=tier.practice, processor_customer_id="cus_TUfixture0001")
    post_event(client, load_event("customer_updated_default_card.json"))
    inbox.process_due(now=timezone.now())
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.FAILED and "several members" in row.error
    assert not DunningStep.objects.filter(case=case, kind="retry").exists()
