"""Waiting in the browser tests for what a person would wait for: the next page, a text, an element.

A click on a link or a submit button may return before the next page has replaced the one clicked
on: read at once, what answers is the old page (or a half-built new one), or an element that goes
stale under the reader. `follow` clicks and waits until the old page is gone and the new one has loaded; `shows`
waits for a text. The waits are long (a busy machine), and end as soon as what they wait for is
there."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Callable, TypeVar

T = TypeVar("T")

# How long an explicit wait lasts at most, and how long a lookup waits for its element to appear.
WAIT = 60
IMPLICIT_WAIT = 20


@contextmanager
def no_implicit_wait(driver):
    """Lookups answer at once inside: an element not there is not waited for."""
    driver.implicitly_wait(0)
    try:
        yield
    finally:
        driver.implicitly_wait(IMPLICIT_WAIT)


def wait_for(driver, condition: Callable[..., T], *, seconds: float = WAIT) -> T:
    """`condition(driver)`'s first true value, polled (an element missing or gone stale meanwhile
    counts as not yet)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    with no_implicit_wait(driver):
        return WebDriverWait(driver, seconds, ignored_exceptions=(NoSuchElementException,
                                                                  StaleElementReferenceException)).until(condition)


def present_now(driver, by, value) -> list:
    """The elements there now, without waiting for one to appear (to tell which page this is, or
    that something is absent)."""
    with no_implicit_wait(driver):
        return driver.find_elements(by, value)


@contextmanager
def new_page(driver):
    """The block makes the browser go to another page (a click, a submit, a double click): wait until
    the page it was on is gone and the next one has loaded. (The page left is marked; while Chromium
    swaps documents its answers may be errors, which count as not yet.)"""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    mark = uuid.uuid4().hex
    driver.execute_script("document.documentElement.dataset.leftBehind = arguments[0];", mark)
    yield
    with no_implicit_wait(driver):
        WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(lambda d: d.execute_script(
            "return document.readyState === 'complete'"
            " && document.documentElement.dataset.leftBehind !== arguments[0];", mark))


def follow(driver, element) -> None:
    """Click a link or a submit button, and wait for the page it leads to."""
    with new_page(driver):
        element.click()


def shows(driver, text: str) -> None:
    """Wait until the page has `text` (in its source)."""
    wait_for(driver, lambda d: text in d.page_source)
