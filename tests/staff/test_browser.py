"""The staff pages in real headless Chromium against a live server: log in, find a member, redeem
(exactly once, even on a double click or a resubmitted form), permissions, the dashboard charts.
Screenshots go to artifacts/screenshots/."""

import shutil
import tempfile
from pathlib import Path

import pytest
from django.urls import reverse

from memberships.models import EntitlementBalance, EntryKind, LedgerEntry
from memberships.roles import FRONT_DESK, MANAGER, ensure_roles
from tests.factories import ana_garcia, staff_user
from tests.support.browser import IMPLICIT_WAIT, follow, new_page, present_now, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "pw-Staff-2026!"


@pytest.fixture(scope="module")
def chromium():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"Chromium not installed ({CHROMIUM} and {CHROMEDRIVER} are needed); `make browsers` installs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations are console errors
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(IMPLICIT_WAIT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium):
    """One Chromium per module (starting it is the slow part), a clean session per test."""
    chromium.set_window_size(1280, 900)
    yield chromium
    chromium.delete_all_cookies()


@pytest.fixture
def clinic(transactional_db, glow):
    ensure_roles()
    tier, facial, credit = glow
    practice = tier.practice
    member, membership = ana_garcia(tier)
    staff_user(FRONT_DESK, practice, username="frontdesk")
    staff_user(MANAGER, practice, username="manager")
    return {"practice": practice, "member": member, "membership": membership, "facial": facial, "credit": credit}


def balance(clinic, service):
    return EntitlementBalance.objects.get(membership=clinic["membership"], service=clinic[service]).balance


def log_in(driver, live_server, username):
    from selenium.webdriver.common.by import By

    driver.get(live_server.url + reverse("memberships:login"))
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    if present_now(driver, By.ID, "id_code"):  # a manager: the code their authenticator shows now
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from tests.support.two_factor import code_for

        driver.find_element(By.ID, "id_code").send_keys(code_for(TOTPDevice.objects.get(user__username=username)))
        follow(driver, driver.find_element(By.XPATH, '//button[text()="Continue"]'))
    driver.find_element(By.ID, "id_q")  # landed on member search


def open_chart(driver, live_server, clinic):
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "id_q")
    box.send_keys("garcia")
    with new_page(driver):
        box.submit()
    follow(driver, driver.find_element(By.LINK_TEXT, "Garcia, Ana"))
    driver.find_element(By.ID, "redeem-button")


def choose(driver, service):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "id_service")).select_by_value(str(service.pk))


def test_front_desk_redeems_a_facial(browser, live_server, clinic):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, "frontdesk")
    open_chart(browser, live_server, clinic)
    facial = clinic["facial"]
    available = browser.find_element(By.CSS_SELECTOR, f'[data-testid="available-{facial.pk}"]')
    assert available.text == "1"
    browser.save_screenshot(str(SCREENSHOTS / "chart-before-redeem.png"))
    choose(browser, facial)
    follow(browser, browser.find_element(By.ID, "redeem-button"))
    message = browser.find_element(By.CSS_SELECTOR, ".messages .success")
    assert "Redeemed 1 HydraFacial" in message.text
    assert browser.find_element(By.CSS_SELECTOR, f'[data-testid="available-{facial.pk}"]').text == "0"
    first_event = browser.find_element(By.CSS_SELECTOR, ".timeline li.event")
    assert "Redeemed 1 HydraFacial" in first_event.text and "frontdesk" in first_event.text
    browser.save_screenshot(str(SCREENSHOTS / "chart-after-redeem.png"))
    assert balance(clinic, "facial") == 0


def test_double_click_spends_once(browser, live_server, clinic):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, "frontdesk")
    open_chart(browser, live_server, clinic)
    choose(browser, clinic["credit"])
    quantity = browser.find_element(By.ID, "id_quantity")
    quantity.clear()
    quantity.send_keys("5")
    with new_page(browser):
        ActionChains(browser).double_click(browser.find_element(By.ID, "redeem-button")).perform()
    browser.find_element(By.CSS_SELECTOR, ".messages li")
    assert balance(clinic, "credit") == 4500
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEEM).count() == 1


@pytest.mark.postgres
def test_double_click_without_the_script_guard_still_spends_once(browser, live_server, clinic):
    """The button guard is a convenience: with it removed, both clicks reach the server at once with
    the same form token, and the server spends once. PostgreSQL only: on in-memory SQLite the live
    server's threads share one connection, so two concurrent requests share one transaction."""
    log_in(browser, live_server, "frontdesk")
    open_chart(browser, live_server, clinic)
    choose(browser, clinic["credit"])
    browser.execute_script("document.querySelector('form.redeem-form').removeAttribute('data-once');")
    # Two submissions of the same form, back to back, as two clicks would send them.
    statuses = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const form = document.querySelector('form.redeem-form');
        const send = () => fetch(form.action, {method: 'POST', body: new FormData(form), redirect: 'manual',
                                               credentials: 'same-origin'}).then(r => r.type + ':' + r.status);
        Promise.all([send(), send()]).then(done);
    """)
    assert len(statuses) == 2
    assert balance(clinic, "credit") == 4900
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEEM).count() == 1


def test_resubmitted_form_spends_once(browser, live_server, clinic):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, "frontdesk")
    open_chart(browser, live_server, clinic)
    choose(browser, clinic["facial"])
    saved = browser.execute_script(
        "return Array.from(new FormData(document.querySelector('form.redeem-form')).entries());")
    follow(browser, browser.find_element(By.ID, "redeem-button"))
    browser.find_element(By.CSS_SELECTOR, ".messages .success")
    # The same form posted again (a browser resubmission after Back, or a retry).
    page = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const body = new FormData();
        for (const [k, v] of arguments[0]) body.append(k, v);
        fetch(document.querySelector('form.redeem-form').action, {method: 'POST', body, credentials: 'same-origin'})
          .then(r => r.text()).then(done);
    """, saved)
    assert "already recorded" in page
    browser.refresh()
    assert browser.find_element(By.CSS_SELECTOR, f'[data-testid="available-{clinic["facial"].pk}"]').text == "0"
    assert balance(clinic, "facial") == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEEM).count() == 1


def test_front_desk_is_refused_the_dashboard(browser, live_server, clinic):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, "frontdesk")
    assert not present_now(browser, By.LINK_TEXT, "Dashboard")
    browser.get(live_server.url + reverse("manager:dashboard"))
    assert "have access to this page" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(SCREENSHOTS / "front-desk-refused-dashboard.png"))


def _reconciled_twice(clinic):
    """The spreadsheet lists Ana at a promo price: each run finds the price mismatch (and her balances,
    which the sheet leaves out)."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.sheets.batches import create_import_batch, run_import_batch
    from billing.reconciliation.runs import run_reconciliation

    now = timezone.now()
    sheet = (f"Member #,First name,Last name,Plan,Start date,Price,Status\n"
             f"{clinic['member'].member_number},Ana,Garcia,Glow,2025-01-05,$179.00,active\n").encode()
    batch = create_import_batch(practice=clinic["practice"], file_name="members.csv", content=sheet, dry_run=False,
                                now=now - timedelta(days=2))
    run_import_batch(batch_id=batch.pk, now=now - timedelta(days=2))
    for at in (now - timedelta(days=1), now):
        run_reconciliation(practice=clinic["practice"], now=at, trigger="test")


def test_manager_sees_the_dashboard_charts(browser, live_server, clinic):
    from selenium.webdriver.common.by import By

    _reconciled_twice(clinic)
    log_in(browser, live_server, "manager")
    follow(browser, browser.find_element(By.LINK_TEXT, "Dashboard"))
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart-svg")
    assert len(charts) == 7
    for chart in charts:
        assert chart.size["width"] > 200 and chart.size["height"] > 15
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart-svg polyline")  # the members line is drawn
    section = browser.find_element(By.CSS_SELECTOR, '[data-testid="reconciliation-section"]')
    trend = section.find_element(By.CSS_SELECTOR, "svg.chart-svg")
    assert trend.get_attribute("aria-label") == "Open discrepancies at each reconciliation run, by kind"
    bars = [bar for bar in trend.find_elements(By.CSS_SELECTOR, "rect") if bar.size["height"] > 1]
    assert len(bars) == 4                               # price and balance mismatches, at each of the two runs
    assert "3 open" in section.find_element(By.CSS_SELECTOR, '[data-testid="reconciliation-open"]').text
    assert section.find_element(By.LINK_TEXT, "Open the reconciliation page").is_displayed()
    table = browser.find_element(By.CSS_SELECTOR, '[data-testid="payback-weeks"]')
    assert table.is_displayed()
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 8 and "(this week)" in rows[-1].text
    cells = [[cell.text for cell in r.find_elements(By.CSS_SELECTOR, "td")] for r in rows]
    assert sum(int(c[4]) for c in cells) == 3           # discrepancies found (yesterday: this week or last)
    assert sum(int(c[8]) for c in cells) == 1           # one member with a price mismatch
    browser.save_screenshot(str(SCREENSHOTS / "manager-dashboard.png"))


def test_compact_chart_beside_the_record(browser, live_server, clinic):
    from selenium.webdriver.common.by import By

    browser.set_window_size(400, 900)
    log_in(browser, live_server, "frontdesk")
    browser.get(live_server.url + reverse("memberships:chart", args=[clinic["member"].pk]) + "?compact=1")
    button = browser.find_element(By.ID, "redeem-button")
    assert button.is_displayed()
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400  # no horizontal scrolling
    browser.save_screenshot(str(SCREENSHOTS / "chart-compact-400px.png"))


def test_manager_applies_a_held_treatment_from_the_chart_once(browser, live_server, clinic):
    """The record reported Ana's HydraFacial before the redemptions stage: the chart points at it,
    the manager confirms and applies it (a double click spends once)."""
    from django.utils import timezone
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from integrations.models import RecordException
    from integrations.records.base import TreatmentCompleted
    from integrations.records.inbound import apply_record_event
    from memberships.models import AutomationStage

    practice, member = clinic["practice"], clinic["member"]
    practice.record_adapter, practice.automation_stage = "webhook", AutomationStage.ALERTS
    practice.save()
    member.record_patient_id = "P-1"
    member.save(update_fields=["record_patient_id"])
    assert apply_record_event(practice=practice, now=timezone.now(), event=TreatmentCompleted(
        appointment_id="A-1", patient_id="P-1", service_code=clinic["facial"].code)) == "review"

    log_in(browser, live_server, "manager")
    assert "1 open" in browser.find_element(By.CSS_SELECTOR, '[data-testid="nav-record-exceptions"]').get_attribute(
        "innerHTML")
    open_chart(browser, live_server, clinic)
    follow(browser, browser.find_element(By.CSS_SELECTOR, '[data-testid="record-exceptions"] a'))
    browser.save_screenshot(str(SCREENSHOTS / "record-exceptions.png"))
    browser.find_element(By.CSS_SELECTOR, 'input[name="confirm"]').click()
    apply = browser.find_element(By.XPATH, '//button[text()="Apply now"]')
    with new_page(browser):
        ActionChains(browser).double_click(apply).perform()
    message = browser.find_element(By.CSS_SELECTOR, ".messages li")
    assert "Applied" in message.text or "already closed" in message.text
    assert balance(clinic, "facial") == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEEM).count() == 1
    assert RecordException.objects.get().status == "applied"
    browser.save_screenshot(str(SCREENSHOTS / "record-exceptions-applied.png"))


def csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


def test_manager_sets_up_two_factor_and_pages_run_under_the_content_security_policy(browser, live_server, clinic):
    """A manager without an authenticator scans the QR code (here: reads the key), confirms a code,
    gets ten recovery codes; then the dashboard, the chart, the admin and the API docs (Swagger UI)
    run with no Content-Security-Policy violation in the browser."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from selenium.webdriver.common.by import By

    from tests.support.two_factor import code_for

    TOTPDevice.objects.filter(user__username="manager").delete()
    browser.get(live_server.url + reverse("memberships:login"))
    browser.find_element(By.ID, "id_username").send_keys("manager")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    qr = browser.find_element(By.CSS_SELECTOR, '[data-testid="totp-qr"] svg')
    assert qr.size["width"] > 100 and qr.size["height"] > 100
    browser.save_screenshot(str(SCREENSHOTS / "two-factor-setup.png"))
    device = TOTPDevice.objects.get(user__username="manager", confirmed=False)
    browser.find_element(By.ID, "id_code").send_keys(code_for(device))
    follow(browser, browser.find_element(By.XPATH, '//button[text()="Confirm"]'))
    codes = browser.find_elements(By.CSS_SELECTOR, '[data-testid="recovery-codes"] li')
    assert len(codes) == 10
    follow(browser, browser.find_element(By.LINK_TEXT, "I have saved them — continue"))
    browser.find_element(By.ID, "id_q")
    browser.get_log("browser")  # start afresh
    for path in [reverse("manager:dashboard"), reverse("memberships:chart", args=[clinic["member"].pk]),
                 "/admin/", "/admin/memberships/member/", "/api/docs/"]:
        browser.get(live_server.url + path)
        if path == "/api/docs/":  # Swagger UI fetched the schema and drew the operations
            wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary"))
        assert csp_violations(browser) == [], path


def test_front_desk_decides_an_sms_reply_with_the_button_pressed(browser, live_server, clinic):
    """A form of two named buttons (the SMS replies page): the double-click guard disables the buttons
    as the form goes, and the choice the person pressed still reaches the server."""
    from django.utils import timezone
    from selenium.webdriver.common.by import By

    from integrations.messaging.holds import open_hold
    from integrations.models import SmsHold, SmsHoldOutcome

    hold = open_hold(member=clinic["member"], inbound=None, text="wrong number, who is this",
                     reason="wrong number", now=timezone.now())
    log_in(browser, live_server, "frontdesk")
    browser.get(live_server.url + reverse("sms_replies:list"))
    follow(browser, browser.find_element(By.XPATH, '//button[@value="resume"]'))
    wait_for(browser, lambda d: SmsHold.objects.get(pk=hold.pk).cleared_at is not None)
    assert SmsHold.objects.get(pk=hold.pk).outcome == SmsHoldOutcome.RESUMED
