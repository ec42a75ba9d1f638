"""A card on file at a Square practice, on SQLite and PostgreSQL: the staff card link and the member's
"update my card" open our page with Square's Web Payments SDK (the card is tokenized in the browser;
only the `cnon:` token reaches us), the token becomes a card at the fake Square (the real SDK, every
answer checked against its models), then the subscription starts with that card or takes it.
The whole page in Chromium is in test_square_cards_browser.py."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import inbox
from memberships.models import AuditLog, AutomationStage, EntitlementBalance, Membership, MembershipStatus
from memberships.models.practice import Processor
from tests.factories import MemberFactory
from tests.support.square_fake_checkout import TEST_NONCE, SquareFakeCheckout
from tests.support.square_fixtures import square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def square_fake_class():
    return SquareFakeCheckout


@pytest.fixture
def on_square(settings, square_env, glow):
    square_fake = square_env
    settings.SQUARE_WEB_SDK_URL = square_fake.sdk_url
    settings.SQUARE_APPLICATION_ID = "sandbox-sq0idb-test"
    settings.PUBLIC_BASE_URL = "http://testserver"
    square_fake.now = timezone.now()
    tier, facial, credit = glow
    practice = tier.practice
    square_fake.timezone = practice.timezone          # Square's location: its dates are days there
    practice.processor = Processor.SQUARE
    practice.automation_stage = AutomationStage.TIER_SYNC
    practice.save(update_fields=["processor", "automation_stage"])
    return tier


def enrolled_waiting_for_card(tier):
    from memberships import services

    member = MemberFactory(practice=tier.practice, email="nora@example.com")
    membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                        idempotency_key=f"enroll:{member.pk}", now=timezone.now())
    return member, membership


def link_from(page: str) -> str:
    found = re.search(r'id="card-link-url" value="([^"]+)"', page)
    assert found, "no card link on the page"
    return found.group(1).replace("http://testserver", "")


def test_front_desk_card_link_starts_the_square_subscription_with_the_card_saved_on_our_page(
        client, front_desk, on_square, square_fake):
    member, membership = enrolled_waiting_for_card(on_square)
    client.force_login(front_desk)
    answer = client.post(reverse("card_link", args=[member.pk]))
    assert answer.status_code == 200 and AuditLog.objects.filter(action="card_link", member=member).count() == 1
    url = link_from(answer.content.decode())
    assert url.startswith("/billing/card/square/")
    assert square_fake.requests == []                    # nothing at Square until the card is entered
    client.logout()                                      # the member's device: no staff session

    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "the first payment of $199.00/month is charged to it now" in html
    assert f'src="{square_fake.sdk_url}"' in html and 'name="source_token"' in html
    assert 'data-application-id="sandbox-sq0idb-test"' in html
    policy = page.headers["Content-Security-Policy"]
    for directive in ("script-src", "frame-src", "connect-src"):
        assert re.search(rf"{directive} [^;]*{re.escape(square_fake.base_url)}", policy), directive
    assert square_fake.base_url not in client.get("/join/nowhere/").headers.get("Content-Security-Policy", "")

    done = client.post(url, {"source_token": TEST_NONCE})
    assert done.status_code == 200
    assert "your membership has started" in done.content.decode()
    membership.refresh_from_db()
    member.refresh_from_db()
    (card,) = square_fake.cards.values()
    (sub,) = square_fake.subscriptions.values()
    assert card["customer_id"] == member.processor_customer_id == sub["customer_id"]
    assert sub["card_id"] == card["id"] and membership.processor_subscription_id == sub["id"]
    assert square_fake.catalog[sub["plan_variation_id"]]["subscription_plan_variation_data"]["name"] \
        == on_square.processor_name                      # the neutral processor name, never the tier's

    # a second submit of the same token (a double click, a reload) saves nothing more
    again = client.post(url, {"source_token": TEST_NONCE})
    assert again.status_code == 200
    assert len(square_fake.cards) == 1 and len(square_fake.subscriptions) == 1

    # Square charged the first cycle: its webhook makes the membership active with its balances
    for response in square_fake.deliver(client):
        assert response.status_code == 200
    inbox.process_due(now=timezone.now())
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    assert {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")} == {"hydrafacial": 1, "product-credit": 5000}


@pytest.fixture
def subscribed(on_square, square_fake):
    """A member whose Square subscription runs on an old card."""
    from integrations.processors.square import SquareProcessor

    member, membership = enrolled_waiting_for_card(on_square)
    square = SquareProcessor.from_settings()
    customer = square.ensure_customer(member_ref=f"mb_{member.pk}", existing_ref="", given_name="Nora")
    old_card = square.save_card(customer_ref=customer, source_token="cnon:old-card", member_ref=f"mb_{member.pk}")
    price = square.ensure_price(tier_ref=f"tr_{on_square.pk}", plan_id="", product_name=on_square.processor_name,
                                amount_cents=on_square.price_cents, currency="usd", interval="month")
    sub = square.ensure_subscription(customer_ref=customer, membership_ref=f"ms_{membership.pk}", price_ref=price,
                                     metadata={"card_ref": old_card})
    Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=sub.subscription_ref)
    member.processor_customer_id = customer
    member.save(update_fields=["processor_customer_id"])
    membership.refresh_from_db()
    return member, membership, old_card


def test_members_new_card_replaces_the_subscriptions_card_and_starts_nothing_new(client, subscribed, square_fake):
    from integrations.processors.member_card import member_card_update_url

    member, membership, old_card = subscribed
    url = member_card_update_url(member=member, return_url="http://testserver/me/?card=done")
    url = url.replace("http://testserver", "")
    html = client.get(url).content.decode()
    assert "Save the card your membership payments should be charged to" in html and "$199.00" not in html

    done = client.post(url, {"source_token": "cnon:new-card-nonce"})
    assert done.status_code == 200
    text = done.content.decode()
    assert "the next payment of your membership will be charged to it" in text
    assert 'href="http://testserver/me/?card=done"' in text
    (sub,) = square_fake.subscriptions.values()
    new_cards = [c for c in square_fake.cards if c != old_card]
    assert len(new_cards) == 1 and sub["card_id"] == new_cards[0]
    assert square_fake.calls("PUT", f"/v2/subscriptions/{sub['id']}") == 1
    client.post(url, {"source_token": "cnon:new-card-nonce"})          # the same token again
    assert square_fake.calls("PUT", f"/v2/subscriptions/{sub['id']}") == 1 and len(square_fake.cards) == 2


@pytest.mark.parametrize("token", ["", "tok_visa", "cnon:" + "x" * 300, "4111111111111111"])
def test_anything_but_a_square_card_token_is_refused_and_nothing_reaches_square(client, subscribed, square_fake,
                                                                                token):
    from integrations.processors.square_cards import card_page_url

    member, membership, _ = subscribed
    url = card_page_url(membership=membership).replace("http://testserver", "")
    before = len(square_fake.requests)
    answer = client.post(url, {"source_token": token})
    assert answer.status_code == 400
    assert "The card could not be read" in answer.content.decode()
    assert len(square_fake.requests) == before


def test_a_declined_card_says_so_and_keeps_the_old_card(client, subscribed, square_fake):
    from integrations.processors.square_cards import card_page_url

    member, membership, old_card = subscribed
    url = card_page_url(membership=membership).replace("http://testserver", "")
    answer = client.post(url, {"source_token": "cnon:card-nonce-declined"})     # refused by CreateCard
    assert answer.status_code == 402 and "The card was declined" in answer.content.decode()
    assert 'name="source_token"' in answer.content.decode()                      # the form, to try another
    (sub,) = square_fake.subscriptions.values()
    assert sub["card_id"] == old_card and list(square_fake.cards) == [old_card]
    assert square_fake.calls("POST", "/v2/cards") == 2 and square_fake.calls("PUT", "/v2/subscriptions") == 0


@pytest.mark.parametrize("status, code, category", [(429, "RATE_LIMITED", "RATE_LIMIT_ERROR"),
                                                    (500, "INTERNAL_SERVER_ERROR", "API_ERROR")])
def test_square_down_the_member_is_told_to_try_again_and_the_retry_starts_one_subscription(
        client, on_square, square_fake, status, code, category):
    from integrations.processors.square_cards import card_page_url

    member, membership = enrolled_waiting_for_card(on_square)
    url = card_page_url(membership=membership).replace("http://testserver", "")
    square_fake.fail_next(status, code=code, category=category)
    answer = client.post(url, {"source_token": "cnon:first-try"})
    html = answer.content.decode()
    assert answer.status_code == 503
    assert "The card could not be saved right now; nothing was charged. Please try again in a few minutes." in html
    assert 'name="source_token"' in html and square_fake.base_url in answer.headers["Content-Security-Policy"]
    assert not square_fake.subscriptions and not square_fake.invoices
    membership.refresh_from_db()
    assert membership.processor_subscription_id == ""

    again = client.post(url, {"source_token": "cnon:second-try"})               # the SDK tokenizes anew
    assert again.status_code == 200 and "your membership has started" in again.content.decode()
    (sub,) = square_fake.subscriptions.values()
    assert len(square_fake.invoices) == 1
    membership.refresh_from_db()
    assert membership.processor_subscription_id == sub["id"]


def test_a_forged_or_old_link_opens_nothing(client, subscribed, settings, square_fake):
    from integrations.processors.square_cards import card_page_url

    member, membership, _ = subscribed
    url = card_page_url(membership=membership).replace("http://testserver", "")
    assert client.get(url[:-3] + "xx/").status_code == 404
    settings.SQUARE_CARD_PAGE_DAYS = 0
    import time

    time.sleep(1.1)
    assert client.get(url).status_code == 404
    assert client.post(url, {"source_token": TEST_NONCE}).status_code == 404


def test_below_tier_sync_the_page_starts_no_subscription(client, on_square, square_fake):
    from integrations.processors.square_cards import card_page_url

    member, membership = enrolled_waiting_for_card(on_square)
    url = card_page_url(membership=membership).replace("http://testserver", "")
    practice = on_square.practice
    practice.automation_stage = AutomationStage.DUNNING
    practice.save(update_fields=["automation_stage"])
    answer = client.post(url, {"source_token": TEST_NONCE})
    assert answer.status_code == 409 and "started from here" in answer.content.decode()
    assert square_fake.requests == []


def test_a_dunning_card_link_at_a_square_practice_opens_our_square_card_page(client, subscribed, square_fake):
    from billing.dunning import links
    from billing.models import DunningCase

    member, membership, old_card = subscribed
    for answer in square_fake.deliver(client):                   # the first month, paid
        assert answer.status_code == 200
    square_fake.now = square_fake.now + timedelta(days=31)
    failed = square_fake.bill(membership.processor_subscription_id, fail_code="INSUFFICIENT_FUNDS")
    for answer in square_fake.deliver(client):
        assert answer.status_code == 200
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    case = DunningCase.objects.get(invoice_ref=failed)
    opened = client.get(links.card_update_link(case.pk).replace("http://testserver", ""))
    assert opened.status_code == 302 and opened["Location"].startswith("http://testserver/billing/card/square/")
    page = client.get(opened["Location"].replace("http://testserver", ""))
    assert page.status_code == 200 and 'name="source_token"' in page.content.decode()
    done = client.post(opened["Location"].replace("http://testserver", ""), {"source_token": "cnon:after-decline"})
    assert "the next payment of your membership will be charged to it" in done.content.decode()
    sub = square_fake.subscriptions[membership.processor_subscription_id]
    assert sub["card_id"] != old_card and sub["card_id"] in square_fake.cards


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_submits_of_one_card_at_once_save_one_card_and_start_one_subscription(on_square, square_fake):
    from integrations.processors.square_cards import save_card_on_file
    from tests.memberships.ledger_checks import hammer

    member, membership = enrolled_waiting_for_card(on_square)
    results, errors = hammer(lambda i: save_card_on_file(membership=membership, source_token=TEST_NONCE,
                                                         now=timezone.now()).subscription_ref, 4)
    assert errors == [] and len(set(results)) == 1
    assert len(square_fake.customers) == 1 and len(square_fake.cards) == 1 and len(square_fake.subscriptions) == 1
    membership.refresh_from_db()
    assert membership.processor_subscription_id == results[0]


@pytest.mark.parametrize("environment, origin, pci", [
    ("sandbox", "https://sandbox.web.squarecdn.com", "https://pci-connect.squareupsandbox.com"),
    ("production", "https://web.squarecdn.com", "https://pci-connect.squareup.com"),
])
def test_the_card_page_loads_squares_own_sdk_and_its_policy_allows_only_square(client, subscribed, settings,
                                                                               environment, origin, pci):
    from integrations.processors.square_cards import card_page_url

    member, membership, _ = subscribed
    settings.SQUARE_WEB_SDK_URL = ""
    settings.SQUARE_ENVIRONMENT = environment
    page = client.get(card_page_url(membership=membership).replace("http://testserver", ""))
    assert f'src="{origin}/v1/square.js"' in page.content.decode()
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";")
                  if part.strip())
    assert policy["script-src"].split() == ["'self'", origin] and policy["frame-src"].split() == [origin]
    assert policy["connect-src"].split() == ["'self'", origin, pci]


def test_a_new_card_a_month_later_is_saved_not_refused_as_a_replay(client, on_square, square_fake):
    """The card that started the membership, then a month later a new one from a new link: Square's
    idempotency keys come from our ids and the card's own token, so the second is a new card the
    subscription takes — not the first request replayed, and no second subscription."""
    import time_machine

    from integrations.processors.square_cards import card_page_url

    member, membership = enrolled_waiting_for_card(on_square)
    first = client.post(card_page_url(membership=membership).replace("http://testserver", ""),
                        {"source_token": TEST_NONCE})
    assert "your membership has started" in first.content.decode()
    membership.refresh_from_db()
    (sub,) = square_fake.subscriptions.values()
    first_card = sub["card_id"]
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        old_link = card_page_url(membership=membership)
    with time_machine.travel(timezone.now() + timedelta(days=62)):
        assert client.get(old_link.replace("http://testserver", "")).status_code == 404   # past its days
        url = card_page_url(membership=membership).replace("http://testserver", "")
        later = client.post(url, {"source_token": "cnon:card-nonce-a-month-later"})
    assert later.status_code == 200 and "the next payment of your membership will be charged to it" in \
        later.content.decode()
    assert len(square_fake.subscriptions) == 1 and len(square_fake.cards) == 2
    assert sub["card_id"] != first_card and square_fake.cards[sub["card_id"]]["customer_id"] == sub["customer_id"]


# The shape of a token Square's Web Payments SDK gives a browser (`card.tokenize()` → `cnon:CA4SE…`,
# 37 characters), longer than Square's test nonce.
BROWSER_TOKEN = "cnon:CA4SEItwaPT55MwzTeZthAcPxokYASgC"


def test_a_card_token_as_long_as_a_real_browsers_is_saved_and_starts_the_membership(client, on_square, square_fake):
    """Square refuses a CreateCard idempotency key over 45 characters (VALUE_TOO_LONG): the key made
    from our ids and a real token must stay within it, or no member could ever save a card."""
    from integrations.processors.square_cards import card_page_url

    member, membership = enrolled_waiting_for_card(on_square)
    url = card_page_url(membership=membership).replace("http://testserver", "")
    done = client.post(url, {"source_token": BROWSER_TOKEN})
    assert done.status_code == 200 and "your membership has started" in done.content.decode()
    (card,) = square_fake.cards.values()
    (sub,) = square_fake.subscriptions.values()
    assert sub["card_id"] == card["id"]
    assert client.post(url, {"source_token": BROWSER_TOKEN}).status_code == 200      # a double submit
    assert len(square_fake.cards) == 1 and len(square_fake.subscriptions) == 1
    later = client.post(url, {"source_token": BROWSER_TOKEN[:-4] + "ZZZZ"})          # another card, later
    assert later.status_code == 200 and len(square_fake.cards) == 2
