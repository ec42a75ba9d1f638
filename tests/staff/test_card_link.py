"""The card-link page: a processor-hosted page for the member's card, created on request (Stripe
answers with recorded responses from a local HTTP server; card numbers never reach us)."""

import json

import pytest
from django.urls import reverse
from pytest_httpserver import HTTPServer

from memberships.models import AuditLog, AutomationStage
from tests.support.stripe_events import FIXTURES


@pytest.fixture
def stripe_at(settings, httpserver: HTTPServer):
    settings.STRIPE_API_BASE = httpserver.url_for("/").rstrip("/")
    settings.STRIPE_SECRET_KEY = "sk_test_recorded"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return httpserver


@pytest.fixture
def past_due(member_with_glow, now):
    from memberships import services

    member, membership, *_ = member_with_glow
    membership.processor_subscription_id = "sub_1SXfixture0001"
    membership.save(update_fields=["processor_subscription_id"])
    member.processor_customer_id = "cus_TUfixture0001"
    member.save(update_fields=["processor_customer_id"])
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd", now=now)
    return member, membership


def test_manager_creates_a_new_card_link_from_the_chart(client, manager, past_due, stripe_at):
    member, membership = past_due
    session = json.loads((FIXTURES / "checkout_session_subscription.json").read_text())
    session.update(mode="setup", url="https://checkout.stripe.com/c/pay/cs_test_setup")
    stripe_at.expect_oneshot_request("/v1/checkout/sessions", method="POST").respond_with_json(session)
    client.force_login(manager)
    chart = client.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    url = reverse("card_link", args=[member.pk])
    assert f'href="{url}"' in chart
    page = client.get(url).content.decode()
    assert "saves a new card" in page
    response = client.post(url)
    assert response.status_code == 200
    assert "https://checkout.stripe.com/c/pay/cs_test_setup" in response.content.decode()
    assert AuditLog.objects.filter(action="card_link", member=member).count() == 1
    sent = stripe_at.log[-1][0].get_data(as_text=True)
    assert member.last_name not in sent and "Glow" not in sent  # nothing personal or clinical


def test_card_link_before_tier_sync_says_why(client, front_desk, glow, stripe_at):
    from tests.factories import MemberFactory
    from memberships import services
    from django.utils import timezone

    tier, *_ = glow
    tier.practice.automation_stage = AutomationStage.DUNNING
    tier.practice.save()
    member = MemberFactory(practice=tier.practice)
    services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="e",
                           now=timezone.now())
    client.force_login(front_desk)
    response = client.post(reverse("card_link", args=[member.pk]))
    assert response.status_code == 409
    page = response.content.decode()
    assert "Automatic subscription changes are off for this practice" in page and "tier_sync" not in page
    assert stripe_at.log == []


def test_card_link_when_the_processor_is_down(client, front_desk, past_due, stripe_at):
    member, _ = past_due
    stripe_at.expect_request("/v1/checkout/sessions", method="POST").respond_with_json(
        json.loads((FIXTURES / "error_api_unavailable.json").read_text()), status=503)
    client.force_login(front_desk)
    response = client.post(reverse("card_link", args=[member.pk]))
    assert response.status_code == 409
    assert b"not reachable" in response.content
