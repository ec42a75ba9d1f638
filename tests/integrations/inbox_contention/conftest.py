"""The inbox under contention: workers, the front desk and a slow or unreachable Stripe at once. On
SQLite the test database is a file (not pytest-django's shared-cache memory database), one per test
process, so that two connections lock each other as the demo's web server and worker do."""

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        import os
        import tempfile

        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        db.setdefault("TEST", {})["NAME"] = os.path.join(tempfile.gettempdir(), f"medspa-contention-{worker}.sqlite3")
