"""Joining online against a real Stripe-compatible peer: localstripe with the Checkout Session our
launcher adds (tests/support/_localstripe_launcher.py). The adapter's session as the SDK reads it
back; and in headless Chromium the whole join — the join page, the hosted payment page, the return
page, the processor's events signed and POSTed to the webhook, the inbox — ending with the
membership active and its first cycle's balance."""

import json
from datetime import timedelta

import pytest
import requests
import stripe
from django.utils import timezone

from integrations import inbox
from integrations.processors.stripe import StripeProcessor
from memberships.models import AgreementAcceptance, EntitlementBalance, Event, Membership, MembershipStatus
from tests.staff.test_browser import SCREENSHOTS, chromium  # noqa: F401  (fixture)
from tests.support.localstripe_server import LocalStripe
from tests.support.browser import follow, shows, wait_for
from tests.support.stripe_events import signed

from .join_support import online  # noqa: F401  (fixture)

pytestmark = [pytest.mark.localstripe]

SECRET = "whsec_test_secret"


@pytest.fixture(scope="module")
def localstripe_server():
    with LocalStripe() as ls:
        yield ls


@pytest.fixture
def stripe_env(settings, localstripe_server):
    localstripe_server.flush()
    settings.STRIPE_SECRET_KEY = localstripe_server.api_key
    settings.STRIPE_API_BASE = localstripe_server.api_base
    settings.STRIPE_ITEM_PRICE_PARAM = "plan"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    return localstripe_server


@pytest.mark.django_db
def test_the_adapter_opens_a_subscription_checkout_carrying_only_our_join_id(stripe_env):
    processor = StripeProcessor.from_settings()
    processor.ensure_price(tier_ref="tr_1", plan_id="medspa-tier-1", product_name="Membership — Tier B",
                           amount_cents=19900, currency="usd", interval="month", idempotency_key="t")
    expires = timezone.now() + timedelta(minutes=60)
    checkout = processor.join_checkout(join_ref="jn_abc", price_ref="medspa-tier-1", email="nora@example.com",
                                       success_url="http://127.0.0.1/done", cancel_url="http://127.0.0.1/back",
                                       expires_at=expires, idempotency_key="join:jn_abc")
    session = stripe_env.make_client().v1.checkout.sessions.retrieve(checkout.checkout_ref)
    assert isinstance(session, stripe.checkout.Session) and checkout.url == session.url
    assert (session.mode, session.status, session.payment_status) == ("subscription", "open", "unpaid")
    assert session.client_reference_id == "jn_abc" and session.metadata.to_dict() == {"join_ref": "jn_abc"}
    assert session.customer_email == "nora@example.com" and session.expires_at == int(expires.timestamp())
    assert session.amount_total == 19900 and session.currency == "usd"


def deliver_events(client, url: str, sent: set) -> int:
    events = [json.loads(str(e)) for e in client.v1.events.list({"limit": 100}).auto_paging_iter()]
    count = 0
    for event in sorted(events, key=lambda e: (e["created"], e["id"])):
        if event["id"] in sent:
            continue
        body, header = signed(event, SECRET)
        response = requests.post(url, data=body, timeout=60,
                                 headers={"Content-Type": "application/json", "Stripe-Signature": header})
        assert response.status_code == 200
        sent.add(event["id"])
        count += 1
    return count


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_visitor_joins_online_and_is_an_active_member_with_a_seeded_balance(browser, live_server, online,
                                                                            stripe_env):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    browser.get(live_server.url + "/join/glow/")
    assert "1 × HydraFacial per month; carries over, up to 2" in browser.page_source
    browser.find_element(By.ID, f"tier-{online['tier'].pk}").click()
    for field, value in (("id_first_name", "Nora"), ("id_last_name", "Newman"), ("id_email", "nora@example.com"),
                         ("id_phone", "(415) 555-0177")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "id_sms_consent").click()
    browser.find_element(By.ID, "id_accept_agreement").click()
    browser.save_screenshot(str(SCREENSHOTS / "join-online-form.png"))
    follow(browser, browser.find_element(By.CSS_SELECTOR, "[data-testid=join-submit]"))

    # the processor's hosted page (localstripe's stand-in): the amount, then pay
    wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=checkout-pay]")))
    assert stripe_env.api_base in browser.current_url
    assert "199.00 USD every month" in browser.page_source
    assert not Membership.objects.exists()
    browser.find_element(By.CSS_SELECTOR, "[data-testid=checkout-pay]").click()
    wait_for(browser, ec.url_contains("/join/glow/done/"))
    shows(browser, "confirming your payment")             # the return page, once it has loaded

    # the processor's events reach the webhook; the workers process them
    client, sent = stripe_env.make_client(), set()
    for _ in range(10):
        delivered = deliver_events(client, live_server.url + "/webhooks/stripe/", sent)
        done = inbox.process_due(now=timezone.now())
        if not delivered and not done and Membership.objects.filter(status=MembershipStatus.ACTIVE).exists():
            break
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE and membership.processor_subscription_id.startswith("sub_")
    assert {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")} == {"hydrafacial": 1, "product-credit": 5000}
    assert membership.member.email == "nora@example.com" and membership.member.sms_consent
    assert AgreementAcceptance.objects.get().agreement.version == 2
    assert Event.objects.filter(membership=membership, summary__startswith="Joined online").exists()
    sub = client.v1.subscriptions.retrieve(membership.processor_subscription_id)
    assert sub.metadata.to_dict().keys() == {"join_ref"}          # nothing about the person at the processor

    browser.refresh()
    assert "Your membership is active" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "join-online-done.png"))
    assert Membership.objects.count() == 1


@pytest.fixture
def browser(chromium):
    chromium.set_window_size(390, 900)              # a phone's width: the page is public
    yield chromium
    chromium.delete_all_cookies()
