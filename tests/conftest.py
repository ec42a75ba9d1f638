import os
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection

from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER

from .factories import PracticeFactory, glow_tier, staff_user


def pytest_addoption(parser):
    parser.addoption(
        "--fake-clock", default=os.environ.get("TEST_FAKE_CLOCK", ""), metavar="HH:MM",
        help="run with the clock started at HH:MM practice time (TIME_ZONE), ticking; e.g. 03:00 to see "
             "that no test depends on the hour it runs at (also TEST_FAKE_CLOCK=HH:MM)")


def fake_clock_start(value: str, *, zone: str, real_now: datetime) -> datetime:
    """The HH:MM in `zone` nearest the real now (at most 12 hours away), so the faked clock stays
    close to the clocks it cannot move: the database server's, and local peers' (localstripe)."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise pytest.UsageError(f"--fake-clock / TEST_FAKE_CLOCK is HH:MM, not {value!r}")
    from zoneinfo import ZoneInfo

    local = real_now.astimezone(ZoneInfo(zone))
    start = local.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
    if start - local > timedelta(hours=12):
        start -= timedelta(days=1)
    elif local - start > timedelta(hours=12):
        start += timedelta(days=1)
    return start


def pytest_configure(config):
    """With --fake-clock (or TEST_FAKE_CLOCK), every test process starts its clock at that hour of
    the practice's day and lets it tick (time-machine: Python's clocks only, not a subprocess's or the
    database server's). A test that moves the clock itself (the `time_machine` fixture) still can."""
    value = config.getoption("--fake-clock")
    if not value:
        return
    import time_machine
    from django.conf import settings
    from django.utils import timezone

    start = fake_clock_start(value, zone=settings.TIME_ZONE, real_now=timezone.now())
    traveller = time_machine.travel(start, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


def pytest_report_header(config):
    value = config.getoption("--fake-clock")
    return [f"fake clock: started at {value} practice time"] if value else []


def pytest_collection_modifyitems(config, items):
    """Postgres-only tests (row locks, concurrency) skip on SQLite, with the reason shown."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); CI runs it")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_postgres_concurrency_test_at_a_time(request):
    """PostgreSQL-only tests (row locks, concurrency) run one at a time across the xdist workers,
    under a file lock: each opens up to 50 connections of its own, and two at once ran out of the
    server's 100. (`xdist_group("pg-threads")` was meant to do this, but pytest-xdist 3.8's
    loadgroup no longer groups under pytest 9: it renames the nodeid, which pytest 9 ignores.)"""
    if request.node.get_closest_marker("postgres") is None:
        yield
        return
    import fcntl
    import tempfile
    from pathlib import Path

    with open(Path(tempfile.gettempdir()) / "medspa-tests-postgres-threads.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def client():
    """Django's test client, whose force_login also passes a manager's second factor
    (tests.support.two_factor); logging in through the login form goes through every step."""
    from tests.support.two_factor import VerifyingClient

    return VerifyingClient()


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's superuser, signed in with the second factor the admin requires."""
    from tests.support.two_factor import VerifyingClient, give_authenticator

    give_authenticator(admin_user)
    client = VerifyingClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def practice(db):
    return PracticeFactory(slug="glow")


@pytest.fixture
def glow(practice):
    return glow_tier(practice)


@pytest.fixture
def front_desk(practice):
    return staff_user(FRONT_DESK, practice)


@pytest.fixture
def clinician(practice):
    return staff_user(CLINICIAN, practice)


@pytest.fixture
def manager(practice):
    return staff_user(MANAGER, practice)


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture
def square_fake_class():
    """The fake Square that `tests.support.square_fixtures.square_fake` starts: a module testing
    Square's pages overrides it with the fake that also hosts them (`SquareFakeCheckout`)."""
    from tests.support.square_fake import SquareFake

    return SquareFake
