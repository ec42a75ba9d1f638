import pytest
from django.db import connection

from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER

from .factories import PracticeFactory, glow_tier, staff_user


def pytest_collection_modifyitems(config, items):
    """Postgres-only tests (row locks, concurrency) skip on SQLite, with the reason shown."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL); CI runs it")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


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
