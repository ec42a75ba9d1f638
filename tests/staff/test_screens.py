"""The words a front desk reads, page by page, in real headless Chromium against a live server: each
test opens a page, reads its rendered text (what a person sees, not the template) for the wording
that must be there and the wording that must not, and saves a screenshot under artifacts/screens/
for a reviewer to look at."""

from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from memberships.models import AutomationStage
from memberships.roles import FRONT_DESK, MANAGER, ensure_roles
from tests.factories import MemberFactory, active_membership, staff_user
from tests.support.browser import follow

from .test_browser import browser, chromium  # noqa: F401  (one Chromium per module, a clean session per test)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENS = Path(__file__).resolve().parents[2] / "artifacts" / "screens"
ANA_PHONE = "+16265550005"


@pytest.fixture
def desk(transactional_db, glow):
    """Glow Aesthetics at the first automation stage (observe), Ana Garcia on Glow with a US mobile,
    a front desk and a manager."""
    ensure_roles()
    tier, facial, credit = glow
    practice = tier.practice
    practice.automation_stage = AutomationStage.OBSERVE
    practice.timezone = "America/Los_Angeles"
    practice.save()
    member = MemberFactory(practice=practice, first_name="Ana", last_name="Garcia", email="ana.garcia@example.com",
                           phone=ANA_PHONE)
    membership = active_membership(tier=tier, member=member, now=timezone.now() - timedelta(days=20))
    return {"practice": practice, "tier": tier, "member": member, "membership": membership, "facial": facial,
            "credit": credit, "front_desk": staff_user(FRONT_DESK, practice, username="frontdesk"),
            "manager": staff_user(MANAGER, practice, username="manager")}


def sign_in(driver, live_server, user):
    """A signed-in session, as after the login page (and, for a manager, the authenticator code)."""
    from tests.support.two_factor import verify_session

    client = Client()
    client.force_login(user)
    verify_session(client, user)
    driver.get(live_server.url + "/static/css/app.css")  # any page of the site, to set its cookie
    driver.add_cookie({"name": settings.SESSION_COOKIE_NAME, "path": "/",
                       "value": client.cookies[settings.SESSION_COOKIE_NAME].value})


def page_text(driver) -> str:
    """What the page says, as shown (visible text only), with its runs of white space made one."""
    from selenium.webdriver.common.by import By

    return " ".join(driver.find_element(By.TAG_NAME, "body").text.split())


def shoot(driver, name: str) -> None:
    """A screenshot of the whole page, however long."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(900, min(height + 140, 4000)))
    driver.save_screenshot(str(SCREENS / f"{name}.png"))


def open_page(driver, live_server, url: str) -> str:
    from selenium.webdriver.common.by import By

    driver.get(live_server.url + url)
    driver.find_element(By.ID, "main")
    return page_text(driver)


def assert_no_jargon(text: str) -> None:
    for wrong in ("+1626", "+1415", " USD", "entrys", "stage below", "(Observe (", "tier_sync", "•"):
        assert wrong not in text, wrong


def fail_a_charge(desk, *, days_ago: int = 4):
    """Ana's renewal charge failed `days_ago` days ago and the dunning run has worked off what fell
    due since (at the observe stage: nothing leaves, the timeline says so)."""
    from billing import dunning
    from billing.facts import ChargeFailed
    from billing.services import membership_ref_for, record_charge_failed

    now = timezone.now()
    failed_at = now - timedelta(days=days_ago)
    stamp = int(failed_at.timestamp())
    record_charge_failed(charge=ChargeFailed(
        processor="stripe", invoice_ref="in_screens_1", subscription_ref="", customer_ref="",
        membership_ref=membership_ref_for(desk["membership"]), amount_cents=19900, currency="usd", attempt_count=1,
        period_start=None, period_end=None, created=stamp, event_created=stamp,
        failure_code="card_declined", decline_code="insufficient_funds"), now=failed_at)
    dunning.run_dunning(now=failed_at)
    dunning.run_dunning(now=now)
    return failed_at


def test_member_search_shows_phones_as_people_write_them(browser, live_server, desk):
    from selenium.webdriver.common.by import By

    sign_in(browser, live_server, desk["front_desk"])
    text = open_page(browser, live_server, reverse("memberships:home") + "?q=garcia")
    box = browser.find_element(By.ID, "id_q")
    assert box.get_attribute("placeholder") == "Name, phone, email or member number"
    assert "M000042" not in box.get_attribute("placeholder")
    assert "Garcia, Ana" in text and "(626) 555-0005" in text
    assert_no_jargon(text)
    shoot(browser, "search-results")


def test_chart_phone_and_the_redeem_help_follow_the_benefit(browser, live_server, desk):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sign_in(browser, live_server, desk["front_desk"])
    text = open_page(browser, live_server, reverse("memberships:chart", args=[desk["member"].pk]))
    assert "(626) 555-0005" in text and "next charge $199.00" in text.lower()
    help_text = browser.find_element(By.ID, "id_quantity_help")
    Select(browser.find_element(By.ID, "id_service")).select_by_value(str(desk["facial"].pk))
    assert help_text.text == "Number of treatments (a whole number)."
    Select(browser.find_element(By.ID, "id_service")).select_by_value(str(desk["credit"].pk))
    assert help_text.text == "Dollar amount, e.g. 25.00."
    text = page_text(browser)
    assert "Dollars for a credit" not in text
    assert_no_jargon(text)
    shoot(browser, "chart-active")


def test_past_due_chart_says_when_the_payment_failed_and_what_happens_next(browser, live_server, desk):
    from selenium.webdriver.common.by import By

    failed_at = fail_a_charge(desk)
    sign_in(browser, live_server, desk["front_desk"])
    url = reverse("memberships:chart", args=[desk["member"].pk])
    text = open_page(browser, live_server, url)
    day = timezone.localtime(failed_at).strftime("%b %-d, %Y")
    line = " ".join(browser.find_element(By.CSS_SELECTOR, '[data-testid="payment-line"]').text.split())
    assert line.startswith(f"Failed on {day} —")
    assert "automatic retries are off for this practice" in line
    assert "next charge" not in text.lower()              # no next charge beside a failed one
    assert "Charge of $199.00 failed" in text
    assert "automatic retries are off for this practice" in text and "not made" in text  # the timeline
    assert "PAYMENT RETRY NOT MADE" in text and "REMINDER NOT SENT" in text   # (small capitals by the style sheet)
    assert "dunning" not in text.lower() and "requested" not in text.lower() and "queued" not in text.lower()
    assert_no_jargon(text)
    shoot(browser, "chart-past-due-observe")

    practice = desk["practice"]
    practice.automation_stage = AutomationStage.DUNNING
    practice.save(update_fields=["automation_stage"])
    text = open_page(browser, live_server, url)
    line = " ".join(browser.find_element(By.CSS_SELECTOR, '[data-testid="payment-line"]').text.split())
    retry = timezone.localtime(failed_at + timedelta(days=5)).strftime("%b %-d")
    assert line == f"Failed on {day} — retrying {retry}"
    assert "next charge" not in text.lower()
    shoot(browser, "chart-past-due-retrying")

    browser.set_window_size(400, 900)                     # beside the record, the compact panel
    open_page(browser, live_server, url + "?compact=1")
    line = " ".join(browser.find_element(By.CSS_SELECTOR, '[data-testid="payment-line"]').text.split())
    assert line == f"Failed on {day} — retrying {retry}"
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 400
    shoot(browser, "chart-past-due-compact")


def test_enroll_confirmation_lists_the_benefits_once(browser, live_server, desk):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    maya = MemberFactory(practice=desk["practice"], first_name="Maya", last_name="Lopez", phone="+14155550188")
    sign_in(browser, live_server, desk["front_desk"])
    open_page(browser, live_server, reverse("memberships:enroll", args=[maya.pk]))
    Select(browser.find_element(By.ID, "id_tier")).select_by_value(str(desk["tier"].pk))
    follow(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    browser.find_element(By.CSS_SELECTOR, "ul.consequences")
    text = page_text(browser)
    benefits = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul.consequences ul li")]
    assert benefits == ["1 HydraFacial per month (carries over, up to 2)",
                        "$50.00 Product credit per month (use it or lose it each cycle)"]  # no "• " of its own
    assert "Automatic subscription changes are off for this practice (automation stage “Observe”)" in text
    assert "((" not in text and "))" not in text
    assert_no_jargon(text)
    shoot(browser, "enroll-confirmation")


def test_dunning_queue_says_automatic_retries_are_off(browser, live_server, desk):
    from selenium.webdriver.common.by import By

    from billing.facts import ChargeFailed
    from billing.services import membership_ref_for, record_charge_failed

    fail_a_charge(desk)
    # A member no message can reach (no email, no SMS consent): the queue gives the number to call.
    lee = MemberFactory(practice=desk["practice"], first_name="Lee", last_name="Park", email="", sms_consent=False,
                        phone="+16265550199")
    stamp = int(timezone.now().timestamp())
    record_charge_failed(charge=ChargeFailed(
        processor="stripe", invoice_ref="in_screens_2", subscription_ref="", customer_ref="",
        membership_ref=membership_ref_for(active_membership(tier=desk["tier"], member=lee)), amount_cents=19900,
        currency="usd", attempt_count=1, period_start=None, period_end=None, created=stamp, event_created=stamp,
        failure_code="card_declined", decline_code="insufficient_funds"), now=timezone.now())
    from billing import dunning

    dunning.run_dunning(now=timezone.now())
    sign_in(browser, live_server, desk["manager"])
    text = open_page(browser, live_server, reverse("manager:dunning"))
    notice = browser.find_element(By.CSS_SELECTOR, '[data-testid="automation-off"]')
    assert "Automatic payment retries and reminders are off for this practice" in notice.text
    link = notice.find_element(By.LINK_TEXT, "switch them on in Automation stage")
    assert link.get_attribute("href").endswith(reverse("mirror:rollout"))
    assert "Ana Garcia" in text and "$199.00" in text
    assert "0 retries" not in text and "0 messages" not in text
    assert "no automatic retries or reminders" in text
    assert "no SMS consent, no email — call the member at (626) 555-0199" in text
    assert "$398.00" in text                                       # at risk: both open cases
    assert_no_jargon(text)
    shoot(browser, "dunning-queue-observe")


def test_reconciliation_lists_members_by_name(browser, live_server, desk):
    from billing.reconciliation.runs import run_reconciliation
    from billing.sheets.batches import create_import_batch, run_import_batch

    now = timezone.now()
    member = desk["member"]
    sheet = (f"Member #,First name,Last name,Plan,Start date,Price,Status\n"
             f"{member.member_number},Ana,Garcia,Glow,2025-01-05,$179.00,active\n").encode()
    batch = create_import_batch(practice=desk["practice"], file_name="members.csv", content=sheet, dry_run=False,
                                now=now - timedelta(days=1))
    run_import_batch(batch_id=batch.pk, now=now - timedelta(days=1))
    run_reconciliation(practice=desk["practice"], now=now, trigger="test")
    sign_in(browser, live_server, desk["manager"])
    from selenium.webdriver.common.by import By

    text = open_page(browser, live_server, reverse("mirror:reconciliation"))
    rows = [" ".join(r.text.split()) for r in browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")]
    assert rows and all(r.startswith(f"Ana Garcia {member.member_number}") for r in rows)
    # Balances by the service's name, dollars as dollars (not "product-credit ... 5000").
    assert "HydraFacial balance is 0 in the spreadsheet, 1 in the ledger" in text
    assert "Product credit balance is $0.00 in the spreadsheet, $50.00 in the ledger" in text
    assert "product-credit" not in text and "5000" not in text
    assert "Error" not in text and "Unavailable" not in text     # no exception class names
    assert_no_jargon(text)
    shoot(browser, "reconciliation")
    text = open_page(browser, live_server, reverse("mirror:rollout"))   # where the manager reads it before moving up
    assert "(Balance mismatch 2, Price mismatch 1)" in text and "_mismatch" not in text
    shoot(browser, "rollout")


def test_a_failed_import_check_says_so(browser, live_server, desk):
    from selenium.webdriver.common.by import By

    from billing.sheets.batches import create_import_batch, run_import_batch

    now = timezone.now()
    sheet = ("Member #,First name,Last name,Plan,Start date,Status\n"
             "GA00901,Lena,Park,Platinum,2025-02-01,active\n"
             "GA00902,Omar,Haddad,Glow,not a date,active\n"
             "GA00903,Rosa,Diaz,Glow,2025-03-01,active\n").encode()
    batch = create_import_batch(practice=desk["practice"], file_name="spreadsheet.csv", content=sheet, dry_run=True,
                                now=now)
    batch = run_import_batch(batch_id=batch.pk, now=now)
    problems = len(batch.errors)
    assert problems >= 2
    sign_in(browser, live_server, desk["manager"])
    text = open_page(browser, live_server, reverse("mirror:import_upload"))
    row = " ".join(browser.find_element(By.CSS_SELECTOR, "table.results tbody tr").text.split())
    assert f"Check failed {problems} problems" in row
    assert "Checked (dry run)" not in text
    shoot(browser, "import-list-check-failed")
    text = open_page(browser, live_server, reverse("mirror:import_detail", args=[batch.pk]))
    assert f"Check failed {problems} problems" in text and "Checked (dry run)" not in text
    shoot(browser, "import-check-failed")


def test_admin_says_ledger_entries(browser, live_server, desk):
    from django.contrib.auth import get_user_model

    from tests.support.two_factor import give_authenticator

    owner = get_user_model().objects.create_superuser("owner", "owner@example.com", "pw-Owner-2026!")
    give_authenticator(owner)
    sign_in(browser, live_server, owner)
    text = open_page(browser, live_server, "/admin/")
    assert "Ledger entries" in text and "entrys" not in text.lower()
    shoot(browser, "admin-index")
    text = open_page(browser, live_server, "/admin/memberships/member/")
    assert "(626) 555-0005" in text and ANA_PHONE not in text
    shoot(browser, "admin-members")


def test_record_exceptions_say_what_is_off_in_words(browser, live_server, desk):
    from integrations.records.base import TreatmentCompleted
    from integrations.records.inbound import apply_record_event

    practice, member = desk["practice"], desk["member"]
    practice.record_adapter, practice.automation_stage = "webhook", AutomationStage.ALERTS
    practice.save()
    member.record_patient_id = "P-1"
    member.save(update_fields=["record_patient_id"])
    assert apply_record_event(practice=practice, now=timezone.now(), event=TreatmentCompleted(
        appointment_id="A-1", patient_id="P-1", service_code=desk["facial"].code)) == "review"
    sign_in(browser, live_server, desk["manager"])
    text = open_page(browser, live_server, reverse("records_staff:list"))
    assert "spend it now, although the record's treatments are not spent automatically here yet" in text
    assert "alerts stage" not in text and "redemptions stage" not in text
    assert_no_jargon(text)
    shoot(browser, "record-exceptions")


def test_card_link_below_tier_sync_says_what_to_do(browser, live_server, desk):
    from selenium.webdriver.common.by import By

    from memberships import services

    maya = MemberFactory(practice=desk["practice"], first_name="Maya", last_name="Lopez")
    services.enroll_member(member=maya, tier=desk["tier"], actor=services.Actor.system(), idempotency_key="e-maya",
                           now=datetime.now(dt_timezone.utc))
    sign_in(browser, live_server, desk["front_desk"])
    open_page(browser, live_server, reverse("card_link", args=[maya.pk]))
    follow(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    browser.find_element(By.CSS_SELECTOR, ".form-errors")
    text = page_text(browser)
    assert "Automatic subscription changes are off for this practice" in text
    assert_no_jargon(text)
    shoot(browser, "card-link-observe")


def test_dashboard_shows_breakage_by_month_and_staff_hours_saved(browser, live_server, desk, time_machine):
    """What the manager sees of what expired unused this month and of the front desk's time the
    member page and the reconciliation saved, in words and dollars."""
    from selenium.webdriver.common.by import By

    from memberships import services
    from memberships.services.common import write_view_audit
    from tests.support.clock import clear_of_month_start

    # In the first minutes of a month, a quarter of an hour into it: what is written two minutes back
    # is this month's.
    time_machine.move_to(clear_of_month_start(timezone.now(), zone=desk["practice"].zone), tick=True)
    now = timezone.now()
    # Ana renews: last cycle's unused $50 of product credit expires (her HydraFacial carries over).
    services.refill_entitlements(membership=desk["membership"], cycle_key="in_screens_renewal",
                                 actor=services.Actor.processor(), now=now - timedelta(minutes=2))
    # She opens her own page twice today (one question the front desk did not answer).
    for _ in range(2):
        write_view_audit(actor=services.Actor.member(desk["member"]), action="member_page_view",
                         members=[desk["member"]], now=now - timedelta(minutes=1))
    sign_in(browser, live_server, desk["manager"])
    text = open_page(browser, live_server, reverse("manager:dashboard"))
    month = timezone.localtime(now, desk["practice"].zone)
    breakage = browser.find_element(By.CSS_SELECTOR, f'[data-breakage-month="{month:%Y-%m}"]')
    assert " ".join(breakage.text.split()) == f"{month:%b %Y} $50.00 $50.00"
    assert "breakage, 12 months $50.00" in text.lower()             # the figure the month rows sum to
    saved = browser.find_element(By.CSS_SELECTOR, f'[data-staff-month="{month:%Y-%m}"]')
    assert " ".join(saved.text.split()) == f"{month:%b %Y} (this month) 1 0 0 0.1 $1.67"   # 4 minutes at $25.00 an hour
    assert "Staff hours saved, month by month" in text
    assert "instead of calling to ask what is left, 4 min" in text
    assert "Months in the practice's time zone (America/Los_Angeles)" in text
    assert_no_jargon(text)
    browser.execute_script("document.querySelector('[data-testid=staff-time-section]').scrollIntoView()")
    shoot(browser, "dashboard-breakage-staff-time")
