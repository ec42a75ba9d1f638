"""The Square card page in headless Chromium against a live server: the front desk creates the card
link on a Square practice (its staff page, through the test client), the member's browser opens it, the Web Payments SDK (the fake Square's
stand-in `square.js`, loaded under the page's Content-Security-Policy) draws the card field and
tokenizes it, the page posts only the token — and at the fake Square the card is saved and the
subscription charges it from now on. Screenshots go to artifacts/screenshots/."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from memberships.roles import FRONT_DESK, ensure_roles
from tests.factories import staff_user
from tests.staff.test_browser import SCREENSHOTS, browser, chromium  # noqa: F401  (fixtures)

from .test_square_cards import on_square, square_env, square_fake, square_fake_class, subscribed  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_front_desk_card_link_on_square_saves_the_card_and_the_subscription_takes_it(
        browser, live_server, settings, subscribed, square_fake):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import wait_for

    settings.PUBLIC_BASE_URL = live_server.url
    member, membership, old_card = subscribed
    ensure_roles()
    staff_user(FRONT_DESK, member.practice, username="frontdesk")
    desk = Client()
    desk.force_login(User.objects.get(username="frontdesk"))
    page = desk.post(reverse("card_link", args=[member.pk])).content.decode()
    url = re.search(r'id="card-link-url" value="([^"]+)"', page).group(1)
    assert url.startswith(live_server.url + "/billing/card/square/")

    browser.get(url)
    field = wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=stand-in-card-number]")))
    field.send_keys("4111 1111 1111 1111")            # typed into Square's field, never our form
    save = browser.find_element(By.CSS_SELECTOR, "[data-testid=square-card-save]")
    wait_for(browser, lambda d: save.is_enabled())
    browser.save_screenshot(str(SCREENSHOTS / "square-card-page.png"))
    save.click()
    message = wait_for(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=square-card-message]")))
    assert "the next payment of your membership will be charged to it" in message.text
    browser.save_screenshot(str(SCREENSHOTS / "square-card-saved.png"))

    (sub,) = square_fake.subscriptions.values()
    new_cards = [card for card in square_fake.cards if card != old_card]
    assert len(new_cards) == 1 and sub["card_id"] == new_cards[0]
    posted = [body for method, path, body in square_fake.requests if (method, path) == ("POST", "/v2/cards")]
    assert posted[-1]["source_id"] == "cnon:card-nonce-ok"
    assert not any("4111" in str(body) for _, _, body in square_fake.requests)
    csp_errors = [e["message"] for e in browser.get_log("browser")
                  if "Content Security Policy" in e["message"] or "Refused" in e["message"]]
    assert csp_errors == []
