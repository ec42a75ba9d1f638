"""Failed logins are throttled per username across addresses and per address across usernames; the
form warns how many attempts are left; a locked-out client gets a styled page saying how long to wait."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from memberships.roles import FRONT_DESK
from tests.factories import staff_user

PASSWORD = "pw-Staff-2026!"
PROXY = "10.0.0.2"


def login(username, password, *, ip, client=None):
    client = client or Client()
    response = client.post(reverse("memberships:login"), {"username": username, "password": password},
                           REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=ip)
    return response


@pytest.fixture(autouse=True)
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_IP_FAILURE_LIMIT = 10
    settings.AXES_COOLOFF_TIME = 0.25


def test_many_usernames_from_one_address_lock_that_address(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    for n in range(10):  # twelve usernames in the report; the address limit is 10 here
        login(f"guess{n}", "wrong", ip="203.0.113.9")
    assert login("desk", PASSWORD, ip="203.0.113.9").status_code == 429  # even a right password, from there
    assert login("desk", PASSWORD, ip="198.51.100.7").status_code == 302  # the proxy itself is not locked


def test_one_username_from_many_addresses_is_locked_everywhere(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    for n in range(5):
        login("desk", "wrong", ip=f"203.0.113.{n + 1}")
    locked = login("desk", PASSWORD, ip="198.51.100.200")
    assert locked.status_code == 429
    staff_user(FRONT_DESK, practice, username="colleague")
    assert login("colleague", PASSWORD, ip="198.51.100.200").status_code == 302


def test_the_form_warns_how_many_attempts_are_left_before_the_lock(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    first = login("desk", "wrong", ip="203.0.113.9")
    assert first.status_code == 200
    assert "4 attempts left before logging in is paused for 15 minutes" in first.content.decode()
    for _ in range(3):
        last = login("desk", "wrong", ip="203.0.113.9")
    assert "1 attempt left before" in last.content.decode()


def test_the_lockout_page_is_styled_and_says_how_long_to_wait(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    for _ in range(5):
        response = login("desk", "wrong", ip="203.0.113.9")
    assert response.status_code == 429
    html = response.content.decode()
    assert 'href="/static/css/app.css"' in html and "Membership ledger" in html  # the base template
    assert re.search(r"Try again in 1[45] minutes", html), html
    assert "Content-Security-Policy" in response


def test_a_success_does_not_wipe_the_addresss_failures_on_other_usernames(practice):
    staff_user(FRONT_DESK, practice, username="insider")
    for n in range(9):
        login(f"victim{n}", "wrong", ip="203.0.113.9")
    assert login("insider", PASSWORD, ip="203.0.113.9").status_code == 302  # their own password
    login("victim9", "wrong", ip="203.0.113.9")
    assert login("insider", PASSWORD, ip="203.0.113.9").status_code == 429


def test_a_success_clears_that_usernames_failures_from_that_address(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    for _ in range(4):
        login("desk", "wrong", ip="203.0.113.9")
    assert login("desk", PASSWORD, ip="203.0.113.9").status_code == 302
    assert "4 attempts left" in login("desk", "wrong", ip="203.0.113.9").content.decode()


@pytest.mark.parametrize("variant", [" desk", "desk ", "\uff44\uff45\uff53\uff4b"])  # spaces; fullwidth letters
def test_a_username_written_differently_but_signing_in_to_the_same_account_is_the_same_lock(practice, variant):
    """The login form strips spaces and folds Unicode compatibility forms (NFKC) before checking the
    password: the lock counts the account that would be signed in to, not the string as typed."""
    staff_user(FRONT_DESK, practice, username="desk")
    for n in range(5):
        login("desk", "wrong", ip=f"203.0.113.{n + 1}")
    assert login(variant, PASSWORD, ip="198.51.100.200").status_code == 429


def test_failures_under_written_variants_count_for_the_one_account(practice):
    staff_user(FRONT_DESK, practice, username="desk")
    for n, variant in enumerate([" desk", "desk ", "\uff44esk", " desk ", "d\uff45sk"]):
        login(variant, "wrong", ip=f"203.0.113.{n + 1}")
    assert login("desk", PASSWORD, ip="198.51.100.200").status_code == 429
