"""The join page on a phone (375 px) in headless Chromium: it fits the screen and the person joining
sees the practice, not the staff side's name or a way to its sign-in."""

import pytest
from django.urls import reverse

from tests.staff.test_browser import SCREENSHOTS, browser, chromium  # noqa: F401 (fixtures)
from tests.support.browser import present_now

from .join_support import online  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = (375, 740)


def test_the_join_page_fits_a_phone_and_shows_the_practice(browser, live_server, online):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.set_window_size(*PHONE)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True})
    try:
        browser.get(live_server.url + reverse("portal:join:page", args=[online["practice"].slug]))
        browser.find_element(By.CSS_SELECTOR, "[data-testid=join-form]")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        browser.save_screenshot(str(SCREENSHOTS / "join-page-375.png"))
        header = browser.find_element(By.CSS_SELECTOR, "header").text
        links = [a.get_attribute("href") for a in present_now(browser, By.CSS_SELECTOR, "header a")]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert width <= PHONE[0], f"the page scrolls sideways at {PHONE[0]} px ({width} px wide)"
    assert online["practice"].name in header and "Membership ledger" not in header
    assert not any(href and "/login" in href or href == live_server.url + "/" for href in links)
    assert "Membership ledger" not in browser.title
