"""In headless Chromium: the group's owner signs in (password, then the code), chooses a clinic of
another practice of the group on the location page, sees it in the header, and opens the group
dashboard — every location's line, the total, the charts drawn, nothing refused by the page's
policy. Screenshots in artifacts/screenshots/."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships.roles import ensure_roles
from tests.factories import MemberFactory, active_membership, glow_tier
from tests.staff.test_browser import SCREENSHOTS, browser, chromium  # noqa: F401  (the module's Chromium)
from tests.support.browser import follow

from .group_world import build_group, group_manager

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def group(transactional_db):
    ensure_roles()
    world = build_group()
    now = timezone.now()
    for practice, homes in ((world.glow, [world.downtown, world.uptown, None]), (world.bloom, [world.harbor])):
        tier, _, _ = glow_tier(practice)
        for i, home in enumerate(homes * 2):
            active_membership(tier=tier, member=MemberFactory(practice=practice, home_location=home), now=now,
                              cycle_key=f"b{practice.pk}-{i}")
    group_manager(world.organization, world.glow, location=world.downtown)
    return world


def test_the_owner_chooses_a_clinic_and_sees_the_group_dashboard(browser, live_server, group):  # noqa: F811
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from selenium.webdriver.common.by import By

    from tests.support.two_factor import code_for

    browser.get(live_server.url + reverse("memberships:login"))
    browser.find_element(By.ID, "id_username").send_keys("owner")
    browser.find_element(By.ID, "id_password").send_keys("pw-Owner-2026!")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    browser.find_element(By.ID, "id_code").send_keys(code_for(TOTPDevice.objects.get(user__username="owner")))
    follow(browser, browser.find_element(By.XPATH, '//button[text()="Continue"]'))
    form = browser.find_element(By.CSS_SELECTOR, '[data-testid="choose-location"]')
    legends = [el.text for el in form.find_elements(By.TAG_NAME, "legend")]
    assert legends == ["Bloom Med Spa", "Glow Aesthetics"]
    assert form.find_element(By.CSS_SELECTOR, f'input[value="l{group.downtown.pk}"]').is_selected()   # remembered
    browser.save_screenshot(str(SCREENSHOTS / "group-choose-location.png"))
    form.find_element(By.CSS_SELECTOR, f'input[value="l{group.harbor.pk}"]').click()
    follow(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    browser.find_element(By.ID, "id_q")
    header = browser.find_element(By.CSS_SELECTOR, '[data-testid="staff-location"]').text
    assert header.startswith("Location: Harbor (Bloom Med Spa)") and "change" in header

    follow(browser, browser.find_element(By.CSS_SELECTOR, '[data-testid="nav-group"]'))
    table = browser.find_element(By.CSS_SELECTOR, '[data-testid="group-locations"]')
    lines = [row.find_element(By.TAG_NAME, "th").text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert lines == ["Harbor (Bloom Med Spa)", "Downtown (Glow Aesthetics)", "Uptown (Glow Aesthetics)",
                     "Glow Aesthetics — no home location"]
    assert browser.find_element(By.CSS_SELECTOR, '[data-testid="group-members"]').text == "8"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart-svg")
    assert len(charts) == 8 and all(chart.size["width"] > 200 for chart in charts)
    refused = [entry for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
    assert refused == []
    browser.save_screenshot(str(SCREENSHOTS / "group-dashboard.png"))
