"""Joining online at a Square practice, on SQLite and PostgreSQL, against the fake Square (the real
SDK; answers and webhooks checked against its models): the join page sends the visitor to a Square
payment link for the tier's plan variation; paying there makes Square's customer, card and
subscription and its signed `subscription.created` and `invoice.payment_made`; the membership exists
once Square confirms — exactly once however often the webhooks arrive, an existing member matched by
email. In Chromium: the whole join, the hosted page being the fake's stand-in."""

import json
import re

import pytest
import requests
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import (
    AgreementAcceptance,
    EntitlementBalance,
    Event,
    JoinAttempt,
    Member,
    Membership,
    MembershipStatus,
)
from memberships.models.practice import Processor
from tests.factories import MemberFactory
from tests.staff.test_browser import SCREENSHOTS, chromium  # noqa: F401  (fixture)
from tests.support.square_fake_checkout import SquareFakeCheckout
from tests.support.square_fixtures import square_env, square_fake  # noqa: F401  (fixtures)

from .join_support import form, online  # noqa: F401  (fixture)


@pytest.fixture
def square_fake_class():
    return SquareFakeCheckout


@pytest.fixture
def square_online(online, square_env):
    square_fake = square_env
    square_fake.now = timezone.now()
    practice = online["practice"]
    practice.processor = Processor.SQUARE
    practice.save(update_fields=["processor"])
    return online


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


def start_join(client, online, **changes):
    answer = client.post("/join/glow/", form(online, **changes))
    assert answer.status_code == 302, answer.content.decode()[:2000]
    return answer


def deliver_all(fake, post) -> list:
    sent = list(fake.outbox)
    for answer in fake.deliver(post):
        assert answer.status_code == 200
    return sent


@pytest.mark.django_db
def test_the_join_page_sends_the_visitor_to_a_square_payment_link_for_the_tiers_plan(client, square_online,
                                                                                     square_fake):
    answer = start_join(client, square_online)
    (link,) = square_fake.payment_links.values()
    attempt = JoinAttempt.objects.get()
    assert answer["Location"] == link["url"] and attempt.checkout_ref == link["id"]
    assert square_fake.base_url in answer.headers["Content-Security-Policy"].split("form-action")[1].split(";")[0]
    tier = square_online["tier"]
    tier.refresh_from_db()
    assert link["checkout_options"]["subscription_plan_id"] == tier.processor_price_id
    assert link["checkout_options"]["redirect_url"] == f"http://testserver/join/glow/done/{attempt.ref}/"
    assert link["_money"] == {"amount": 19900, "currency": "USD"}
    assert link["pre_populated_data"] == {"buyer_email": "nora.newman@example.com"}
    sent = json.dumps([body for _, _, body in square_fake.requests])
    assert "Newman" not in sent and "Glow" not in sent and "HydraFacial" not in sent   # the email only
    assert not Membership.objects.exists()


@pytest.mark.django_db
def test_paying_on_square_makes_one_active_membership_however_often_square_confirms(client, square_online,
                                                                                     square_fake):
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    sub_id = square_fake.pay_link(link_id, email="nora.newman@example.com")
    sent = deliver_all(square_fake, client)
    assert [json.loads(body)["type"] for body, _ in sent] == ["invoice.payment_made", "subscription.created"]
    for body, headers in sent:                           # Square retries: each event again
        assert client.post("/webhooks/square/", data=body, content_type="application/json",
                           headers=headers).json()["duplicate"] is True
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE and membership.processor_subscription_id == sub_id
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}
    assert membership.member.processor_customer_id == square_fake.subscriptions[sub_id]["customer_id"]
    assert AgreementAcceptance.objects.get().checkout_ref == link_id
    assert Event.objects.filter(membership=membership, summary__startswith="Joined online").count() == 1
    assert not JoinAttempt.objects.exists()
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
    assert "Your membership is active" in client.get(f"/join/glow/done/{AgreementAcceptance.objects.get().join_ref}/"
                                                     ).content.decode()


@pytest.mark.django_db
def test_an_existing_member_who_joins_on_square_is_matched_by_email_not_duplicated(client, square_online,
                                                                                   square_fake):
    existing = MemberFactory(practice=square_online["practice"], first_name="Nora", last_name="Newman",
                             email="nora.newman@example.com", phone="")
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    square_fake.pay_link(link_id, email="Nora.Newman@example.com")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    assert Member.objects.count() == 1
    membership = Membership.objects.get()
    assert membership.member == existing and membership.status == MembershipStatus.ACTIVE
    existing.refresh_from_db()
    assert existing.phone == "+14155550177"                # filled where the desk left it blank


@pytest.mark.django_db
def test_a_square_subscription_that_is_no_join_enrolls_nobody(client, square_online, square_fake):
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    square_fake.pay_link(link_id, email="somebody.else@example.com")   # another email typed at Square
    deliver_all(square_fake, client)
    inbox.process_due(now=timezone.now())
    assert not Membership.objects.exists() and JoinAttempt.objects.count() == 1
    waiting = InboundEvent.objects.filter(status=InboundStatus.RECEIVED)
    assert waiting.count() == 2 and all("No membership for subscription" in e.error for e in waiting)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_visitor_joins_on_square_in_a_browser_and_is_an_active_member(chromium, live_server, square_online,
                                                                       square_fake):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import follow, shows, wait_for

    browser = chromium
    browser.set_window_size(390, 900)
    browser.get(live_server.url + "/join/glow/")
    browser.find_element(By.ID, f"tier-{square_online['tier'].pk}").click()
    for field, value in (("id_first_name", "Nora"), ("id_last_name", "Newman"), ("id_email", "nora@example.com"),
                         ("id_phone", "(415) 555-0177")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "id_accept_agreement").click()
    follow(browser, browser.find_element(By.CSS_SELECTOR, "[data-testid=join-submit]"))

    pay = wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=square-checkout-pay]")))
    assert browser.current_url.startswith(square_fake.base_url + "/checkout/pay/")
    assert "199.00 USD every month" in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=square-checkout-email]").get_attribute(
        "value") == "nora@example.com"
    browser.save_screenshot(str(SCREENSHOTS / "join-square-checkout.png"))
    pay.click()
    wait_for(browser, ec.url_contains("/join/glow/done/"))
    shows(browser, "confirming your payment")             # the return page, once it has loaded

    for body, headers in list(square_fake.outbox):       # Square's webhooks reach the live server
        answer = requests.post(live_server.url + "/webhooks/square/", data=body, timeout=60,
                               headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 200
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}
    browser.refresh()
    assert "Your membership is active" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "join-square-done.png"))
    browser.delete_all_cookies()
    assert not [e for e in browser.get_log("browser") if re.search(r"Content Security Policy|Refused", e["message"])]


@pytest.mark.django_db
def test_an_abandoned_square_join_loses_its_payment_link_before_it_is_purged(client, square_online, square_fake,
                                                                             settings):
    from datetime import timedelta

    from portal.join.tasks import purge_abandoned_joins_task

    settings.JOIN_RATE_LIMIT = 10
    start_join(client, square_online)
    old = JoinAttempt.objects.get()
    JoinAttempt.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=30))
    start_join(client, square_online, email="second@example.com")
    fresh = JoinAttempt.objects.exclude(pk=old.pk).get()

    square_fake.fail_next(503, code="SERVICE_UNAVAILABLE", category="API_ERROR")
    assert purge_abandoned_joins_task() == 0             # Square down: the link stays, so does the join
    assert old.checkout_ref in square_fake.payment_links and JoinAttempt.objects.count() == 2

    assert purge_abandoned_joins_task() == 1
    assert old.checkout_ref not in square_fake.payment_links                 # nobody can pay it now
    assert list(JoinAttempt.objects.all()) == [fresh] and fresh.checkout_ref in square_fake.payment_links
    assert requests.get(f"{square_fake.base_url}/checkout/pay/{old.checkout_ref}", timeout=60).status_code == 404


@pytest.mark.django_db
def test_an_abandoned_square_join_is_kept_while_squares_refusal_is_not_that_its_link_is_gone(client, square_online,
                                                                                            square_fake):
    """An expired access token (401) says nothing of the link: it may still take a payment, so the
    join stays on file for the next run; only a link Square does not know (404) counts as closed."""
    from datetime import timedelta

    from portal.join.tasks import purge_abandoned_joins_task

    start_join(client, square_online)
    old = JoinAttempt.objects.get()
    JoinAttempt.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=30))

    square_fake.fail_next(401, code="ACCESS_TOKEN_EXPIRED", category="AUTHENTICATION_ERROR")
    assert purge_abandoned_joins_task() == 0
    assert old.checkout_ref in square_fake.payment_links and JoinAttempt.objects.count() == 1

    square_fake.payment_links.pop(old.checkout_ref)                       # deleted at Square meanwhile
    assert purge_abandoned_joins_task() == 1 and not JoinAttempt.objects.exists()


def _square_dashboard_subscription(fake, *, customer_id: str, plan_variation_id: str) -> str:
    """What the clinic does in Square's dashboard: a subscription for a customer, on the card on file,
    made by no payment link; Square sends `subscription.created` and bills the first month."""
    card = fake._create_card({"card": {"customer_id": customer_id}})["card"]
    answer = fake._create_subscription({"location_id": fake.location_id, "customer_id": customer_id,
                                        "plan_variation_id": plan_variation_id, "card_id": card["id"]})
    sub = fake.subscriptions[answer["subscription"]["id"]]
    fake.emit("subscription.created", "subscription", fake._public(sub))
    return sub["id"]


@pytest.mark.django_db
def test_a_subscription_the_clinic_makes_at_square_for_a_member_with_an_unpaid_join_is_no_join(client, square_online,
                                                                                              square_fake):
    """Nora started a join and left Square's page without paying; the front desk then made her a
    subscription in Square's dashboard, on the same plan, for her Square customer (her email). That is
    no join: her payment link was never paid, so nobody is enrolled from the join's form and agreement,
    and the join (with its still open link) stays for the purge."""
    existing = MemberFactory(practice=square_online["practice"], first_name="Nora", last_name="Newman",
                             email="nora.newman@example.com", phone="")
    customer = square_fake._create_customer({"email_address": "nora.newman@example.com"})["customer"]["id"]
    existing.processor_customer_id = customer
    existing.save(update_fields=["processor_customer_id"])
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    tier = square_online["tier"]
    tier.refresh_from_db()
    _square_dashboard_subscription(square_fake, customer_id=customer, plan_variation_id=tier.processor_price_id)
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    assert not Membership.objects.exists()
    assert not AgreementAcceptance.objects.exists()
    assert JoinAttempt.objects.get().checkout_ref == link_id and link_id in square_fake.payment_links


@pytest.mark.django_db
def test_two_joins_with_one_email_each_subscription_enrolls_the_person_who_paid_it(client, square_online,
                                                                                  square_fake):
    """Nora and Nina (one family email) each start a join; Nora pays first. Her subscription enrolls
    Nora — the join whose payment link Square says her payment paid — not the newest join of that
    email (Nina's, not paid yet), which stays open for Nina."""
    start_join(client, square_online)
    start_join(client, square_online, first_name="Nina", phone="(415) 555-0188")
    nora_join, nina_join = JoinAttempt.objects.order_by("pk")
    nora_sub = square_fake.pay_link(nora_join.checkout_ref, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    membership = Membership.objects.get()
    assert membership.processor_subscription_id == nora_sub
    assert (membership.member.first_name, membership.member.phone) == ("Nora", "+14155550177")
    assert list(JoinAttempt.objects.values_list("pk", flat=True)) == [nina_join.pk]


@pytest.mark.django_db
def test_a_member_who_rejoined_on_square_can_change_the_card_her_subscription_is_charged_to(client, square_online,
                                                                                          square_fake, settings):
    """Nora was a member before (a Square customer of her own, her old card); she joins again online and
    Square's page makes the subscription for the customer it makes there. Her "update my card" saves
    the new card for the subscription's own customer — Square charges a subscription only to its
    customer's card — and the subscription takes it."""
    from integrations.processors.square_cards import card_page_url
    from tests.support.square_fake_checkout import TEST_NONCE

    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.SQUARE_WEB_SDK_URL = square_fake.sdk_url
    old_customer = square_fake._create_customer({"email_address": "nora.newman@example.com"})["customer"]["id"]
    MemberFactory(practice=square_online["practice"], first_name="Nora", last_name="Newman",
                  email="nora.newman@example.com", phone="", processor_customer_id=old_customer)
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    sub_id = square_fake.pay_link(link_id, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    membership = Membership.objects.get(processor_subscription_id=sub_id)
    sub = square_fake.subscriptions[sub_id]
    assert sub["customer_id"] != old_customer

    page = client.post(card_page_url(membership=membership).replace("http://testserver", ""),
                       {"source_token": TEST_NONCE})
    assert page.status_code == 200, page.content.decode()[:3000]
    assert "the next payment of your membership will be charged to it" in page.content.decode()
    assert sub["card_id"] != "" and square_fake.cards[sub["card_id"]]["customer_id"] == sub["customer_id"]
    assert square_fake.cards[sub["card_id"]]["created_at"] and len(square_fake.cards) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_confirming_one_square_join_at_once_enroll_once(client, square_online, square_fake):
    """Square's `subscription.created` and an update of the same new subscription are taken by two
    workers at the same instant (PostgreSQL, real threads): one enrolls; the others get the same
    membership, or nothing when they only start once it exists — one member, one membership, one
    acceptance, one "Joined online"."""
    from integrations.processors.square_checkout import confirm_square_join
    from integrations.processors.square_inbound import parse_stored
    from tests.memberships.ledger_checks import hammer

    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    sub_id = square_fake.pay_link(link_id, email="nora.newman@example.com")
    deliver_all(square_fake, client)
    fact = parse_stored(InboundEvent.objects.get(event_type="subscription.created").payload).fact
    assert fact.subscription_ref == sub_id

    def confirm(i):
        membership = confirm_square_join(fact, now=timezone.now())
        return membership.pk if membership else None

    results, errors = hammer(confirm, 4)
    assert errors == [] and len(results) == 4
    membership = Membership.objects.get()
    assert set(results) - {None} == {membership.pk} and membership.processor_subscription_id == sub_id
    assert Member.objects.count() == 1 and AgreementAcceptance.objects.count() == 1
    assert Event.objects.filter(membership=membership, summary__startswith="Joined online").count() == 1
    assert not JoinAttempt.objects.exists()


@pytest.mark.django_db
def test_below_tier_sync_a_square_join_page_opens_no_payment_link(client, square_online, square_fake):
    """Below `tier_sync` the clinic runs its subscriptions in Square's dashboard: the join page sells
    nothing — no join kept, nothing asked of Square — and says to call the clinic."""
    from memberships.models import AutomationStage

    practice = square_online["practice"]
    assert 'name="first_name"' in client.get("/join/glow/").content.decode()      # at tier_sync: the form
    practice.automation_stage = AutomationStage.DUNNING
    practice.save(update_fields=["automation_stage"])
    page = client.get("/join/glow/")
    answer = client.post("/join/glow/", form(square_online))
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert 'name="first_name"' not in page.content.decode() + answer.content.decode()
    assert not JoinAttempt.objects.exists() and square_fake.requests == [] and not square_fake.payment_links


@pytest.mark.django_db
def test_a_paid_square_join_whose_tender_names_no_customer_is_still_confirmed_by_its_email(client, square_online,
                                                                                           square_fake):
    """Square marks the link's order paid but its tender names no buyer: the email still matches the
    join, which enrolls once (only an unpaid link, or one another customer paid, is refused)."""
    start_join(client, square_online)
    (link_id,) = square_fake.payment_links
    sub_id = square_fake.pay_link(link_id, email="nora.newman@example.com")
    order = square_fake.orders[square_fake.payment_links[link_id]["order_id"]]
    assert order["state"] == "OPEN"
    for tender in order["tenders"]:
        tender.pop("customer_id")
        tender.pop("payment_id")
    deliver_all(square_fake, client)
    for _ in range(3):
        inbox.process_due(now=timezone.now())
    membership = Membership.objects.get()
    assert membership.processor_subscription_id == sub_id and membership.status == MembershipStatus.ACTIVE
