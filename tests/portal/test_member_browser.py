"""The member's page in headless Chromium at a phone's width (375 px): a magic link, the page, a
pause request; the front desk approves it in the staff queue; the member's page then says paused.
Screenshots go to artifacts/screenshots/."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from integrations.outbox import dispatch_due
from memberships.models import MemberRequest, MembershipStatus
from memberships.roles import FRONT_DESK, ensure_roles
from portal.me import links
from portal.models import LinkRequest
from tests.factories import ana_garcia, staff_user
from tests.portal.me_support import LINK
from tests.support.browser import follow, shows
from tests.staff.test_browser import SCREENSHOTS, browser, chromium, log_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = (375, 740)


def _ask_for_link(driver, live_server, email) -> str:
    from selenium.webdriver.common.by import By

    driver.get(live_server.url + reverse("portal:me:link"))
    driver.find_element(By.ID, "id_address").send_keys(email)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    shows(driver, "Check your messages")
    # the queued task and the outbox, as the worker would run them
    links.send_links(request_id=LinkRequest.objects.latest("id").pk, now=timezone.now())
    dispatch_due(now=timezone.now() + timedelta(seconds=1))
    match = LINK.search(mail.outbox[-1].body)
    return f"/me/open/{match.group(1)}/{match.group(2)}/"


def _open(driver, live_server, path):
    from selenium.webdriver.common.by import By

    driver.get(live_server.url + path)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "[data-testid=open-page]"))
    driver.find_element(By.CSS_SELECTOR, "[data-testid=membership-summary]")


def _fits(driver):
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"the page scrolls sideways at {PHONE[0]} px ({width} px wide)"


def test_member_asks_to_pause_on_a_phone_and_the_front_desk_approves(browser, live_server, transactional_db, glow):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ensure_roles()
    member, membership = ana_garcia(glow[0])
    staff_user(FRONT_DESK, member.practice, username="frontdesk")
    browser.set_window_size(*PHONE)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True})
    try:
        _open(browser, live_server, _ask_for_link(browser, live_server, member.email))
        assert "Glow" in browser.page_source and "Active" in browser.find_element(By.CSS_SELECTOR, "[data-testid=status]").text
        _fits(browser)
        browser.save_screenshot(str(SCREENSHOTS / "member-page-375.png"))

        browser.find_element(By.CSS_SELECTOR, "[data-testid=pause-open]").click()
        until = (timezone.now() + timedelta(days=30)).date()
        browser.execute_script("document.getElementById('pause-until').value = arguments[0]", until.isoformat())
        Select(browser.find_element(By.ID, "pause-reason")).select_by_value("travel")
        browser.find_element(By.ID, "pause-note").send_keys("Away in the summer")
        follow(browser, browser.find_element(By.CSS_SELECTOR, "[data-testid=pause-submit]"))
        shows(browser, "the clinic will look at your request")
        _fits(browser)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    request = MemberRequest.objects.get()

    browser.delete_all_cookies()
    browser.set_window_size(1280, 900)
    log_in(browser, live_server, "frontdesk")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "[data-testid=nav-member-requests]"))
    shows(browser, "Away in the summer")
    follow(browser, browser.find_element(By.CSS_SELECTOR, f"[data-testid=approve-{request.pk}]"))
    shows(browser, "Approved: the membership is changed.")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED

    browser.delete_all_cookies()
    browser.set_window_size(*PHONE)
    _open(browser, live_server, _ask_for_link(browser, live_server, member.email))
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=status]").text == "Paused"
    assert f"until {until:%b} {until.day}, {until.year}" in browser.page_source
    browser.save_screenshot(str(SCREENSHOTS / "member-page-paused-375.png"))
