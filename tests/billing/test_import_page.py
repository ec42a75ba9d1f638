"""The manager's import page: check, see the plan and the errors, confirm, watch the progress."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_q.conf import Conf

from billing.models import ImportBatch, ImportStatus
from memberships.models import AuditLog, Member

from .test_import import GOOD_CSV, messy_xlsx


@pytest.fixture
def tasks_inline(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)


def submit(client, capture, url, data=None):
    """POST, let the queued task run (inline), then show the page the POST redirected to."""
    with capture(execute=True):
        response = client.post(url, data or {})
    return client.get(response["Location"]) if response.status_code == 302 else response


def upload(client, capture, content, name):
    return submit(client, capture, reverse("mirror:import_upload"), {"file": SimpleUploadedFile(name, content)})


def test_manager_checks_then_imports(client, manager, glow, tasks_inline, django_capture_on_commit_callbacks):
    client.force_login(manager)
    page = upload(client, django_capture_on_commit_callbacks, GOOD_CSV.encode(), "members.csv")
    text = page.content.decode()
    assert ">Checked</span> no problems" in text and "What importing would do" in text
    assert "opening balance 1 HydraFacial, $50.00 Product credit" in text
    assert Member.objects.count() == 0
    checked = ImportBatch.objects.get()
    progress = client.get(reverse("mirror:import_progress", args=[checked.pk])).json()
    assert progress["finished"] and progress["percent"] == 100
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]))
    assert "Imported. Re-importing the same file changes nothing." in page.content.decode()
    assert Member.objects.count() == 4
    assert AuditLog.objects.filter(action="import_started", user=manager).exists()


def test_errors_are_listed_and_only_valid_rows_is_a_choice(client, manager, glow, tasks_inline,
                                                           django_capture_on_commit_callbacks):
    client.force_login(manager)
    page = upload(client, django_capture_on_commit_callbacks, messy_xlsx(), "members.xlsx")
    text = page.content.decode()
    assert "unknown tier &#x27;Platinum&#x27;" in text and "duplicate member" in text
    assert "Import only the 1 valid row (skip 5 rejected)" in text
    checked = ImportBatch.objects.get()
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]))
    assert "fix them, or choose to import only the valid rows" in page.content.decode()
    assert Member.objects.count() == 0
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]),
                  {"only_valid": "1"})
    assert "Only the valid rows were imported, as chosen. Skipped lines: 3, 5, 6, 7, 8." in page.content.decode()
    assert list(Member.objects.values_list("member_number", flat=True)) == ["X1"]
    assert ImportBatch.objects.filter(status=ImportStatus.IMPORTED, only_valid_rows=True).count() == 1


def test_only_managers_may_import(client, front_desk, glow):
    client.force_login(front_desk)
    assert client.get(reverse("mirror:import_upload")).status_code == 403
    assert client.post(reverse("mirror:import_upload"), {}).status_code == 403


@pytest.mark.parametrize("name", ["members.pdf", "members.csv", "members.txt"])
def test_a_file_that_is_not_a_spreadsheet_is_a_form_error_by_its_content(client, manager, glow, name):
    from html import unescape

    client.force_login(manager)
    page = client.post(reverse("mirror:import_upload"), {"file": SimpleUploadedFile(name, b"%PDF-1.4\n%\xe2\xe3")})
    assert (f"{name}: The file is a PDF document, not a spreadsheet. Upload a .csv or .xlsx file"
            in unescape(page.content.decode()))
    assert ImportBatch.objects.count() == 0


def test_a_balance_like_column_is_confirmed_in_a_form_then_imported(client, manager, glow, practice, tasks_inline,
                                                                    django_capture_on_commit_callbacks):
    from html import unescape

    from .test_import import balances

    client.force_login(manager)
    content = (b"\xef\xbb\xbfClient Name,Email Address,Plan,Member Since,Facials remaining\r\n"
               b"Ann Lee,ann@example.com,Glow,3/14/2024,2\r\n,,,,\r\n")
    text = unescape(upload(client, django_capture_on_commit_callbacks, content, "Export.csv").content.decode())
    assert "Columns that look like balances" in text
    assert '<option value="balance:hydrafacial" selected>HydraFacial (suggested)</option>' in text
    assert "column 'Facials remaining' looks like a balance: is it the HydraFacial balance?" in text
    assert "next number" in text                 # the row would get the practice's next number
    assert "Import 1 new" not in text            # not importable until the column is settled
    checked = ImportBatch.objects.get()
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_columns", args=[checked.pk]),
                  {"column-0-header": "Facials remaining", "column-0-target": "balance:hydrafacial"})
    text = unescape(page.content.decode())
    assert "opening balance 2 HydraFacial" in text and "Columns that look like balances" not in text
    rechecked = ImportBatch.objects.latest("id")
    assert rechecked.mapping == {"Facials remaining": "balance:hydrafacial"} and not rechecked.errors
    assert AuditLog.objects.filter(action="import_checked", user=manager).count() == 2
    submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[rechecked.pk]))
    member = Member.objects.get()
    assert member.member_number == "M000001" and balances("M000001")["hydrafacial"] == 2


def test_a_column_asked_about_may_be_ignored(client, manager, glow, tasks_inline, django_capture_on_commit_callbacks):
    client.force_login(manager)
    content = b"Name,Email,Plan,Joined,Botox units left\nAnn Lee,ann@example.com,Glow,2025-01-05,20\n"
    upload(client, django_capture_on_commit_callbacks, content, "members.csv")
    checked = ImportBatch.objects.get()
    submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_columns", args=[checked.pk]),
           {"column-0-header": "Botox units left", "column-0-target": "balance:nothing"})
    assert ImportBatch.objects.count() == 1            # not a service of the practice: asked again
    submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_columns", args=[checked.pk]),
           {"column-0-header": "Botox units left", "column-0-target": ""})
    rechecked = ImportBatch.objects.latest("id")
    assert rechecked.mapping == {"Botox units left": ""} and not rechecked.errors and rechecked.created_count == 1


def test_the_check_shows_how_each_column_is_read_and_the_date_order_carries_to_the_import(
        client, manager, glow, practice, tasks_inline, django_capture_on_commit_callbacks):
    from html import unescape

    from memberships.models import Membership

    client.force_login(manager)
    content = (b"Member #,Name,Plan,Start date,Next billing date,HydraFacial used this month,HydraFacial balance\n"
               b"M1,Ann Lee,Glow,03/04/2026,03/12/2026,1,2\n")
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", content), "date_order": "dmy"})
    text = unescape(page.content.decode())
    assert "Dates such as 03/04/2026 are" in client.get(reverse("mirror:import_upload")).content.decode()
    assert "opening balance of HydraFacial, in units" in text
    assert "names HydraFacial but also says 'used this month'" in text
    assert "dates read as day/month, the import's date order" in text
    assert "since 2026-04-03" in text
    checked = ImportBatch.objects.get()
    submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_confirm", args=[checked.pk]))
    membership = Membership.objects.get(member__member_number="M1")
    assert membership.current_period_end.astimezone(practice.zone).date().isoformat() == "2026-12-03"
    assert ImportBatch.objects.filter(dry_run=False, date_order="dmy").count() == 1
