"""What localstripe cannot play — Checkout, pause_collection, real declines, outages — against a
local HTTP server answering with recorded Stripe responses (current API shapes)."""

import re
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from integrations import outbox, services as edge
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.errors import NotAllowed
from memberships.models import AutomationStage
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event
from tests.support.stripe_recorded import enroll, post_card_saved, recorded

pytestmark = pytest.mark.django_db


def form(request):
    return {k: v[0] for k, v in parse_qs(request.get_data(as_text=True), keep_blank_values=True).items()}


# --- the hosted card page -----------------------------------------------------------------------------

def test_card_link_starts_the_subscription_on_a_stripe_hosted_page(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    m = enroll(member_with_customer, tier)
    session = recorded("checkout_session_subscription.json", m)
    stripe_at.expect_oneshot_request("/v1/checkout/sessions", method="POST").respond_with_json(session)
    url = edge.card_link(membership=m, now=timezone.now())
    assert url == session["url"] and url.startswith("https://checkout.stripe.com/")
    sent = form(stripe_at.log[-1][0])
    assert sent["mode"] == "subscription" and sent["customer"] == "cus_TUfixture0001"
    assert sent["line_items[0][price]"] == "price_1SXglowMonthly"
    assert sent["subscription_data[metadata][membership_ref]"] == f"ms_{m.pk}"
    assert "Zelda" not in str(sent) and "Quartermaine" not in str(sent) and "Glow" not in str(sent)
    assert stripe_at.log[-1][0].headers["Stripe-Version"] == "2025-10-29.clover"


def test_card_link_for_an_existing_subscription_only_saves_a_new_card(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    m = enroll(member_with_customer, tier, sub=FIXTURE_SUBSCRIPTION)
    session = dict(recorded("checkout_session_subscription.json", m), mode="setup", amount_total=None,
                   url="https://checkout.stripe.com/c/pay/cs_test_setup")
    stripe_at.expect_oneshot_request("/v1/checkout/sessions", method="POST").respond_with_json(session)
    assert edge.card_link(membership=m, now=timezone.now()) == "https://checkout.stripe.com/c/pay/cs_test_setup"
    sent = form(stripe_at.log[-1][0])
    assert sent["mode"] == "setup" and "line_items[0][price]" not in sent


def test_card_link_does_not_start_subscriptions_before_tier_sync(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    tier.practice.automation_stage = AutomationStage.DUNNING
    tier.practice.save()
    m = enroll(member_with_customer, tier)
    with pytest.raises(NotAllowed):
        edge.card_link(membership=m, now=timezone.now())
    assert stripe_at.log == []


def test_card_link_when_stripe_is_down_says_so(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    m = enroll(member_with_customer, tier)
    stripe_at.expect_request("/v1/checkout/sessions", method="POST").respond_with_json(
        recorded("error_api_unavailable.json"), status=503)
    with pytest.raises(edge.ProcessorUnavailableError) as err:
        edge.card_link(membership=m, now=timezone.now())
    assert err.value.code == "processor_unavailable"


# --- pause and resume (localstripe has no pause_collection) -------------------------------------------

def test_pause_and_resume_reach_the_subscription(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    m = enroll(member_with_customer, tier, sub=FIXTURE_SUBSCRIPTION)
    services.refill_entitlements(membership=m, cycle_key="in_1", actor=services.Actor.processor(), now=timezone.now())
    outbox.dispatch_due(now=timezone.now())           # enrollment: subscription already known, nothing to send
    active = load_event("customer_subscription_updated_active.json", membership=m)["data"]["object"]
    paused = load_event("customer_subscription_updated_paused.json", membership=m)["data"]["object"]
    path = f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}"
    stripe_at.expect_oneshot_request(path, method="GET").respond_with_json(active)
    stripe_at.expect_oneshot_request(path, method="POST").respond_with_json(paused)
    until = date.today() + timedelta(days=40)
    services.pause_membership(membership=m, until=until, actor=services.Actor.system(), idempotency_key="p",
                              now=timezone.now())
    outbox.dispatch_due(now=timezone.now())
    d = Delivery.objects.get(event__kind="paused")
    assert d.status == DeliveryStatus.DELIVERED and d.result["collection_paused"] is True
    sent = form(stripe_at.log[-1][0])
    assert sent["pause_collection[behavior]"] == "void"
    # Collection resumes at midnight where the practice is, at the start of the pause's end date.
    resumes = datetime.fromtimestamp(int(sent["pause_collection[resumes_at]"]), tz=m.member.practice.zone)
    assert (resumes.date(), resumes.hour, resumes.minute) == (until, 0, 0)

    stripe_at.expect_oneshot_request(path, method="GET").respond_with_json(paused)
    stripe_at.expect_oneshot_request(path, method="POST").respond_with_json(active)
    services.resume_membership(membership=m, actor=services.Actor.system(), idempotency_key="r", now=timezone.now())
    outbox.dispatch_due(now=timezone.now())
    d = Delivery.objects.get(event__kind="resumed")
    assert d.status == DeliveryStatus.DELIVERED and d.result["collection_paused"] is False
    assert form(stripe_at.log[-1][0]) == {"pause_collection": ""}


# --- declined vs unavailable ----------------------------------------------------------------------------

def test_a_decline_is_a_business_outcome_not_retried(stripe_at, glow, member_with_customer):
    tier, _, _ = glow
    customer = {"id": "cus_TUfixture0001", "object": "customer",
                "invoice_settings": {"default_payment_method": "pm_1SXfixtureCard01"}, "metadata": {}}
    stripe_at.expect_request("/v1/customers/cus_TUfixture0001", method="GET").respond_with_json(customer)
    stripe_at.expect_request("/v1/subscriptions", method="GET").respond_with_json(
        {"object": "list", "data": [], "has_more": False, "url": "/v1/subscriptions"})
    stripe_at.expect_request("/v1/subscriptions", method="POST").respond_with_json(
        recorded("error_card_declined_lost_card.json"), status=402)
    enroll(member_with_customer, tier)
    now = timezone.now()
    outbox.dispatch_due(now=now)
    outbox.dispatch_due(now=now + timedelta(days=1))
    d = Delivery.objects.get(destination="processor")
    assert d.status == DeliveryStatus.FAILED and d.attempts == 1
    assert d.last_error == "declined (hard): card_declined lost_card"


def test_an_outage_is_retried_then_dead_lettered_and_shown_to_managers(stripe_at, glow, member_with_customer,
                                                                       admin_client):
    tier, _, _ = glow
    stripe_at.expect_request(re.compile("/v1/.*")).respond_with_json(recorded("error_api_unavailable.json"),
                                                                     status=503)
    enroll(member_with_customer, tier)
    now = timezone.now()
    for hour in range(0, 24 * 5, 6):
        outbox.dispatch_due(now=now + timedelta(hours=hour))
    d = Delivery.objects.get(destination="processor")
    assert d.status == DeliveryStatus.DEAD and d.attempts == 3 and "HTTP 503" in d.last_error
    page = admin_client.get("/admin/integrations/delivery/?status__exact=dead").content.decode()
    assert "Dead-lettered" in page and "processor" in page
    admin_client.post("/admin/integrations/delivery/", {"action": "redeliver_selected", "_selected_action": [d.pk]})
    d.refresh_from_db()
    assert d.status == DeliveryStatus.PENDING and d.attempts == 0


# --- a new card saved on the hosted page ----------------------------------------------------------------

def test_card_saved_on_the_hosted_page_becomes_the_default(stripe_at, client, glow, member_with_customer):
    from integrations import inbox
    from integrations.models import InboundEvent, InboundStatus

    tier, _, _ = glow
    m = enroll(member_with_customer, tier, sub=FIXTURE_SUBSCRIPTION)
    post_card_saved(stripe_at, client, m)
    inbox.process_due(now=timezone.now())
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.PROCESSED, row.error
    sent = {req.path: form(req) for req, _ in stripe_at.log if req.method == "POST"}
    assert sent["/v1/customers/cus_TUfixture0001"] == {
        "invoice_settings[default_payment_method]": "pm_1SXfixtureNewCard1"}
    assert sent[f"/v1/subscriptions/{FIXTURE_SUBSCRIPTION}"] == {"default_payment_method": "pm_1SXfixtureNewCard1"}
