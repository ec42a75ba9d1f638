"""An uploaded spreadsheet (every member's contact details, often a notes column with clinical detail)
is kept IMPORT_FILE_RETENTION_DAYS, then a daily job empties its file: the batch row, its counts,
outcome, errors and report stay (the import's page and reconciliation read them); a batch still
queued or running keeps its file; a check that old cannot be imported, and its page says so."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from billing.models import ImportBatch, ImportStatus, SheetRow
from billing.sheets.batches import create_import_batch, run_import_batch
from billing.sheets.retention import remove_old_import_files, remove_old_import_files_task
from memberships.models import Member

from .test_import import GOOD_CSV
from .test_import_page import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks_inline(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)

FILE = GOOD_CSV.encode()


def batch(practice, *, days_old: float, status=ImportStatus.IMPORTED, dry_run=False) -> ImportBatch:
    made = create_import_batch(practice=practice, file_name="members.csv", content=FILE, dry_run=dry_run,
                               now=timezone.now() - timedelta(days=days_old))
    ImportBatch.objects.filter(pk=made.pk).update(status=status, created_count=4, report={"actions": [{"line": 2}]},
                                                  errors=[{"line": 3, "column": "Tier", "message": "unknown"}])
    return made


def content(made: ImportBatch) -> bytes:
    return bytes(ImportBatch.objects.get(pk=made.pk).content)


def test_files_past_the_retention_are_emptied_and_the_batch_keeps_its_outcome(practice, settings):
    settings.IMPORT_FILE_RETENTION_DAYS = 30
    old = {status: batch(practice, days_old=31, status=status)
           for status in (ImportStatus.IMPORTED, ImportStatus.REJECTED, ImportStatus.FAILED)}
    old_check = batch(practice, days_old=31, status=ImportStatus.VALIDATED, dry_run=True)
    recent = batch(practice, days_old=29)
    recent_check = batch(practice, days_old=29, status=ImportStatus.VALIDATED, dry_run=True)
    running = {status: batch(practice, days_old=60, status=status)
               for status in (ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.IMPORTING)}

    assert remove_old_import_files(now=timezone.now(), batch_size=2) == 4

    for status, made in [*old.items(), (ImportStatus.VALIDATED, old_check)]:
        kept = ImportBatch.objects.get(pk=made.pk)
        assert bytes(kept.content) == b""
        assert (kept.status, kept.file_name, kept.sha256, kept.created_count) == (status, "members.csv", made.sha256, 4)
        assert kept.report == {"actions": [{"line": 2}]} and kept.errors[0]["message"] == "unknown"
    for made in [recent, recent_check, *running.values()]:
        assert content(made) == FILE
    # run again (the daily job twice, or two workers): nothing more to do, nothing else touched
    assert remove_old_import_files_task() == 0
    assert remove_old_import_files(now=timezone.now()) == 0
    assert content(recent) == FILE and ImportBatch.objects.count() == 9


def test_the_setting_decides_the_age(practice, settings):
    made = batch(practice, days_old=8)
    settings.IMPORT_FILE_RETENTION_DAYS = 10
    assert remove_old_import_files(now=timezone.now()) == 0 and content(made) == FILE
    settings.IMPORT_FILE_RETENTION_DAYS = 7
    assert remove_old_import_files(now=timezone.now()) == 1 and content(made) == b""


def test_a_queued_import_keeps_its_file_and_still_runs(glow, practice, settings):
    settings.IMPORT_FILE_RETENTION_DAYS = 1
    queued = create_import_batch(practice=practice, file_name="members.csv", content=FILE, dry_run=False,
                                 now=timezone.now() - timedelta(days=5))
    assert remove_old_import_files(now=timezone.now()) == 0
    assert run_import_batch(batch_id=queued.pk, now=timezone.now()).status == ImportStatus.IMPORTED
    assert Member.objects.count() == 4
    assert remove_old_import_files(now=timezone.now()) == 1
    # what reconciliation compares against is the spreadsheet view, not the file: it stays
    assert SheetRow.objects.filter(batch=queued).count() == 4


def test_a_check_past_the_retention_says_it_is_too_old_and_imports_nothing(client, manager, glow, practice, settings,
                                                                            tasks_inline,
                                                                            django_capture_on_commit_callbacks):
    settings.IMPORT_FILE_RETENTION_DAYS = 30
    client.force_login(manager)
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", FILE)})
    assert "Import 4 new and 0 changed members" in page.content.decode()
    checked = ImportBatch.objects.get()
    ImportBatch.objects.filter(pk=checked.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert remove_old_import_files(now=timezone.now()) == 1

    page = client.get(reverse("mirror:import_detail", args=[checked.pk]))
    text = page.content.decode()
    assert "The uploaded file was removed 30 days after it was uploaded" in text
    assert "This check is too old to import" in text and "Import 4 new" not in text
    assert "What importing would do" in text                           # the plan stays readable

    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]))
    assert "This check is too old: its file was removed 30 days after it was uploaded. Upload the file again" \
        in page.content.decode()
    assert ImportBatch.objects.count() == 1 and Member.objects.count() == 0


def test_a_column_question_on_a_check_past_the_retention_is_not_asked_nor_checked_again(
        client, manager, glow, settings, tasks_inline, django_capture_on_commit_callbacks):
    settings.IMPORT_FILE_RETENTION_DAYS = 30
    client.force_login(manager)
    sheet = b"Name,Email,Plan,Joined,Botox units left\nAnn Lee,ann@example.com,Glow,2025-01-05,20\n"
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", sheet)})
    assert "Columns that look like balances" in page.content.decode()
    checked = ImportBatch.objects.get()
    ImportBatch.objects.filter(pk=checked.pk).update(created_at=timezone.now() - timedelta(days=40))
    remove_old_import_files(now=timezone.now())
    text = client.get(reverse("mirror:import_detail", args=[checked.pk])).content.decode()
    assert "Columns that look like balances" not in text and "This check is too old to import" in text
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_columns", args=[checked.pk]),
                  {"column-0-header": "Botox units left", "column-0-target": ""})
    assert "This check is too old" in page.content.decode() and ImportBatch.objects.count() == 1


def test_a_recent_check_is_kept_and_imports(client, manager, glow, settings, tasks_inline,
                                            django_capture_on_commit_callbacks):
    settings.IMPORT_FILE_RETENTION_DAYS = 30
    client.force_login(manager)
    submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
           {"file": SimpleUploadedFile("members.csv", FILE)})
    checked = ImportBatch.objects.get()
    ImportBatch.objects.filter(pk=checked.pk).update(created_at=timezone.now() - timedelta(days=29))
    assert remove_old_import_files(now=timezone.now()) == 0
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]))
    assert "Imported." in page.content.decode() and Member.objects.count() == 4
    assert "removed" not in client.get(reverse("mirror:import_detail", args=[checked.pk])).content.decode()


def test_the_job_is_scheduled_daily():
    from django_q.models import Schedule

    from medspa.schedules import every_schedule

    jobs = {fields["func"]: fields for _, fields in every_schedule()}
    assert jobs["billing.sheets.retention.remove_old_import_files_task"]["schedule_type"] == Schedule.DAILY


@pytest.mark.parametrize("days, starts", [("0", False), ("1", True)])
def test_a_retention_under_one_day_is_refused_at_start(days, starts):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medspa.settings.base", "IMPORT_FILE_RETENTION_DAYS": days}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                            text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert (result.returncode == 0) == starts
    assert ("IMPORT_FILE_RETENTION_DAYS is 1 or more, not 0" in result.stderr) != starts
