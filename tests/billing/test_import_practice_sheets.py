"""Spreadsheets as practices really keep them: no member-number column, a BOM and Windows line
endings, "$1,234.50" and "(626) 555-0105", accents, doubled spaces, blank trailing rows. Members are
recognised on a re-import by email, mobile, or name + date of birth; the report is row-level whatever
else is wrong; one email or mobile on two rows is an error on both; the join date is the membership's
start; a header that looks like a balance is asked about; a file that is not a spreadsheet is refused
by what it is, not by its name."""

import io
from datetime import date

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import ImportBatch, ImportStatus
from billing.sheets.checking import check_import
from billing.sheets.reading import SheetError, read_sheet
from memberships import services
from memberships.models import EntitlementBalance, Event, LedgerEntry, Member, Membership
from tests.factories import MemberFactory

from .test_import import NOW, balances, run

HEADER = ("\ufeffFirst  Name,Last Name ,E-mail Address,Cell Phone,Membership Plan,Member Since,Date of Birth,"
          "HydraFacials Left,Product Credit Balance,Status")
ROWS = (
    'José,Álvarez,Jose.Alvarez@Example.com,(626) 555-0105,Glow,3/14/2024,07/04/1988,1,"$1,234.50",Active',
    "Zoë,Nguyễn,,(626) 555-0106,glow,45292,,0,$0.00,active",
    "Mary  Ann,O'Brien,mary.obrien@example.com,,Glow,\"Jan 7, 2025\",12/31/1979,2,$25.00,Active",
    "Renée,Dubois,,,Glow,2025-02-01,02/15/1990,,,",
)
PRACTICE_EXPORT = "\r\n".join([HEADER, *ROWS, ",,,,,,,,,", ",,,,,,,,,", ""]).encode("utf-8")


def by_name(first):
    return Member.objects.get(first_name=first)


def file_and_row_errors(batch):
    return [(e["line"], e["column"], e["message"]) for e in batch.errors]


def test_a_sheet_without_member_numbers_is_imported_with_the_practices_next_numbers(glow, practice):
    desk = services.create_member(practice=practice, first_name="Ada", last_name="Desk", actor=services.Actor.system(),
                                  idempotency_key="desk-1", now=NOW)
    batch = run(practice, PRACTICE_EXPORT)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert (batch.total_rows, batch.created_count, batch.rejected_count) == (4, 4, 0)
    assert desk.member_number == "M000001"
    numbers = [by_name(first).member_number for first in ("José", "Zoë", "Mary Ann", "Renée")]
    assert numbers == ["M000002", "M000003", "M000004", "M000005"]
    jose = by_name("José")
    assert (jose.last_name, jose.email, jose.phone, jose.date_of_birth) == (
        "Álvarez", "jose.alvarez@example.com", "+16265550105", date(1988, 7, 4))
    assert balances(jose.member_number) == {"hydrafacial": 1, "product-credit": 123450}
    assert by_name("Zoë").last_name == "Nguyễn" and by_name("Renée").date_of_birth == date(1990, 2, 15)
    # The practice's next number after the import is the front desk's too.
    after = services.create_member(practice=practice, first_name="Bo", last_name="Desk",
                                   actor=services.Actor.system(), idempotency_key="desk-2", now=NOW)
    assert after.member_number == "M000006"


def test_reimporting_a_sheet_without_member_numbers_changes_nothing_and_says_so(glow, practice, tmp_path):
    path = tmp_path / "Members export.csv"
    path.write_bytes(PRACTICE_EXPORT)
    call_command("import_members", str(path), stdout=io.StringIO())
    counts = (Member.objects.count(), Membership.objects.count(), LedgerEntry.objects.count(), Event.objects.count())
    out = io.StringIO()
    call_command("import_members", str(path), stdout=out)
    assert "4 rows: 0 were created, 0 changed, 4 unchanged, 0 rejected." in out.getvalue()
    assert (Member.objects.count(), Membership.objects.count(), LedgerEntry.objects.count(),
            Event.objects.count()) == counts
    assert ImportBatch.objects.filter(status=ImportStatus.IMPORTED).count() == 2


def test_members_the_ledger_has_are_found_by_email_then_mobile_then_name_and_birth_date(glow, practice):
    by_email = MemberFactory(practice=practice, first_name="José", last_name="Alvarez",
                             email="jose.alvarez@example.com", phone="+14155550999")
    by_mobile = MemberFactory(practice=practice, first_name="Zoe", last_name="Nguyen", email="", phone="+16265550106")
    by_birth = MemberFactory(practice=practice, first_name="Renée", last_name="Dubois", email="", phone="",
                             date_of_birth=date(1990, 2, 15))
    namesake = MemberFactory(practice=practice, first_name="Renée", last_name="Dubois", email="", phone="",
                             date_of_birth=date(1971, 5, 5))
    batch = run(practice, PRACTICE_EXPORT)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert (batch.created_count, batch.changed_count) == (1, 3)
    assert Member.objects.count() == 5
    for member in (by_email, by_mobile, by_birth):
        assert Membership.objects.filter(member=member).count() == 1
    assert not Membership.objects.filter(member=namesake).exists()
    by_email.refresh_from_db()
    assert by_email.phone == "+16265550105" and by_email.last_name == "Álvarez"   # the sheet's details
    assert balances(by_email.member_number) == {"hydrafacial": 1, "product-credit": 123450}


def test_one_email_or_mobile_on_two_rows_is_an_error_on_both_unless_one_household(glow, practice):
    header = "Name,Email,Mobile,Tier,Joined"
    rows = ["Ana Silva,ana@example.com,(626) 555-0101,Glow,01/05/2025",
            "Ben Silva,ana@example.com,(626) 555-0102,Glow,01/05/2025",
            "Cy Park,cy@example.com,(626) 555-0103,Glow,01/05/2025",
            "Di Park,di@example.com,626-555-0103,Glow,01/05/2025"]
    batch = run(practice, "\n".join([header, *rows]).encode())
    assert batch.status == ImportStatus.REJECTED
    assert file_and_row_errors(batch) == [
        (2, "Email", "the email ana@example.com is also on line 3: two members cannot share one "
                     "(a Household column allows it for one household)"),
        (3, "Email", "the email ana@example.com is also on line 2: two members cannot share one "
                     "(a Household column allows it for one household)"),
        (4, "Mobile", "the mobile +16265550103 is also on line 5: two members cannot share one "
                      "(a Household column allows it for one household)"),
        (5, "Mobile", "the mobile +16265550103 is also on line 4: two members cannot share one "
                      "(a Household column allows it for one household)"),
    ]
    assert Member.objects.count() == 0

    households = ["Silva", "Silva", "Park", "Park"]
    with_household = "\n".join([header + ",Household", *(f"{r},{h}" for r, h in zip(rows, households))]).encode()
    first = run(practice, with_household)
    assert first.status == ImportStatus.IMPORTED, first.errors
    assert sorted(Member.objects.values_list("first_name", flat=True)) == ["Ana", "Ben", "Cy", "Di"]
    again = run(practice, with_household)
    assert (again.created_count, again.changed_count, again.unchanged_count) == (0, 0, 4)
    assert Member.objects.count() == 4


def _join_dates_xlsx():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Client Name", "Email", "Plan", "Start Date"])
    ws.append(["Ann Lee", "ann@example.com", "Glow", date(2023, 6, 1)])      # a real Excel date
    ws.append(["Bea Cruz", "bea@example.com", "Glow", 45292])                 # a serial number: 2024-01-01
    ws.append(["Cal Ortiz", "cal@example.com", "Glow", "9/3/2025"])           # US text
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_the_join_date_is_the_membership_start_not_only_its_period(glow, practice):
    csv_batch = run(practice, PRACTICE_EXPORT)
    assert csv_batch.status == ImportStatus.IMPORTED, csv_batch.errors
    xlsx_batch = run(practice, _join_dates_xlsx(), name="members.xlsx")
    assert xlsx_batch.status == ImportStatus.IMPORTED, xlsx_batch.errors
    started = {m.member.first_name: m.started_at.astimezone(practice.zone).date()
               for m in Membership.objects.select_related("member")}
    assert started == {"José": date(2024, 3, 14), "Zoë": date(2024, 1, 1), "Mary Ann": date(2025, 1, 7),
                       "Renée": date(2025, 2, 1), "Ann": date(2023, 6, 1), "Bea": date(2024, 1, 1),
                       "Cal": date(2025, 9, 3)}
    jose = Membership.objects.get(member__first_name="José")
    assert jose.current_period_start.astimezone(practice.zone).date() == date(2026, 11, 14)


BALANCE_LIKE = ("Name,Email,Tier,Joined,Facials remaining,Notes\n"
                "Ann Lee,ann@example.com,Glow,2025-01-05,2,VIP\n"
                "Bo Kim,bo@example.com,Glow,2025-01-05,oops,\n").encode()


def test_a_header_that_looks_like_a_balance_is_asked_about_with_a_suggestion_not_ignored(glow, practice, tmp_path):
    check = check_import(practice=practice, content=BALANCE_LIKE, file_name="m.csv", now=NOW)
    assert check.suggestions == [{"header": "Facials remaining", "target": "balance:hydrafacial",
                                  "service": "HydraFacial"}]
    assert any(e.line == 0 and "'Facials remaining' looks like a balance" in e.message for e in check.errors)
    assert "Notes" in check.ignored_columns and not any("Notes" in e.message for e in check.errors)

    path = tmp_path / "members.csv"
    path.write_bytes(BALANCE_LIKE.replace(b"oops", b"1"))
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_members", str(path), stdout=out)
    assert ("Column 'Facials remaining' looks like the HydraFacial balance: run again with "
            "--map 'Facials remaining=balance:hydrafacial'") in out.getvalue()
    assert Member.objects.count() == 0
    call_command("import_members", str(path), "--map", "Facials remaining=balance:hydrafacial", stdout=io.StringIO())
    assert balances(by_name("Ann").member_number)["hydrafacial"] == 2
    assert balances(by_name("Bo").member_number)["hydrafacial"] == 1


def test_a_file_that_is_not_a_spreadsheet_is_refused_by_its_content(glow, practice, tmp_path):
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
    for name in ("members.txt", "members.csv", "members.xlsx"):
        batch = run(practice, pdf, name=name)
        assert batch.status == ImportStatus.REJECTED
        assert batch.errors == [{"line": 0, "column": "", "message": (
            "The file is a PDF document, not a spreadsheet. Upload a .csv or .xlsx file (in Excel, Numbers or "
            "Google Sheets: save or download it as CSV or .xlsx).")}]
    with pytest.raises(SheetError, match="not text"):
        read_sheet(content=bytes(range(256)) * 20)
    # A workbook called .csv is still a workbook, and a CSV called .xlsx still text.
    assert read_sheet(content=_join_dates_xlsx(), file_name="members.csv").headers[0] == "Client Name"
    assert read_sheet(content=PRACTICE_EXPORT, file_name="members.xlsx").headers[0] == "First Name"
    path = tmp_path / "members.csv"
    path.write_bytes(pdf)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_members", str(path), stdout=out)
    assert "file: The file is a PDF document, not a spreadsheet." in out.getvalue()


def test_utf16_tab_separated_text_from_excel_is_read(glow, practice):
    text = "Name\tEmail\tTier\tJoined\r\nAnn Lee\tann@example.com\tGlow\t03/04/2025\r\n"
    batch = run(practice, text.encode("utf-16"), name="members.txt")
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert by_name("Ann").email == "ann@example.com"


def test_file_level_problems_come_with_every_bad_row_in_the_dry_run_and_the_refusal(glow, practice, tmp_path):
    content = ("Name,Email,Joined,Facials left\n"
               "Ann Lee,ann@example.com,2025-01-05,1\n"
               "Bo Kim,not-an-email,2025-13-45,1\n"
               "Cy Park,cy@example.com,2025-01-05,-2\n").encode()
    for dry_run in (True, False):
        batch = run(practice, content, dry_run=dry_run)
        assert batch.status == (ImportStatus.VALIDATED if dry_run else ImportStatus.REJECTED)
        errors = file_and_row_errors(batch)
        assert [e for e in errors if e[0] == 0] == [
            (0, "", "column 'Facials left' looks like a balance: is it the HydraFacial balance? Confirm "
                    "'Facials left = balance:hydrafacial', or ignore it with 'Facials left ='"),
            (0, "", "no column for the tier (headers such as 'Tier', 'Membership', 'Plan')"),
        ]
        assert [e[:2] for e in errors if e[0]] == [(3, "Email"), (3, "Joined")]
        assert batch.rejected_count == 1
    assert Member.objects.count() == 0 and EntitlementBalance.objects.count() == 0
    path = tmp_path / "members.csv"
    path.write_bytes(content)
    out = io.StringIO()
    call_command("import_members", str(path), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "file: no column for the tier" in text and "line 3, column 'Email': 'not-an-email' is not an email" in text


def test_a_longer_sheet_is_matched_in_sets_and_its_reimport_is_a_no_op(glow, practice):
    """Past a few hundred rows the members are looked up by arrays of values (PostgreSQL's = ANY)."""
    lines = ["Name,Email,Mobile,Plan,Member since,DOB"]
    lines += [f"Client{i} Lee,{f'c{i}@example.com' if i % 2 else ''},{f'(415) 555-{i:04d}' if i % 3 else ''},"
              f"Glow,2025-01-05,1/{1 + i % 28}/1980" for i in range(250)]
    content = "\n".join(lines).encode()
    first = run(practice, content)
    assert first.status == ImportStatus.IMPORTED and first.created_count == 250, first.errors[:3]
    again = run(practice, content)
    assert (again.created_count, again.changed_count, again.unchanged_count) == (0, 0, 250)
    assert Member.objects.count() == 250


def test_the_chart_says_member_since_the_sheets_join_date(client, front_desk, glow, practice):
    from django.urls import reverse

    assert run(practice, PRACTICE_EXPORT).status == ImportStatus.IMPORTED
    client.force_login(front_desk)
    page = client.get(reverse("memberships:chart", args=[by_name("José").pk])).content.decode()
    assert '<dt>Member since</dt><dd data-testid="member-since">Mar 14, 2024</dd>' in page


def _zip(*names):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buf.getvalue()


@pytest.mark.parametrize("content,what", [
    (_zip("[Content_Types].xml", "word/document.xml"), "The file is a Word document"),
    (_zip("mimetype", "content.xml"), "The file is an OpenDocument file (.ods/.odt)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "The file is an old-style Excel (.xls)"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "The file is a PNG image"),
    (b"PK\x03\x04 broken", "The file is a damaged zip archive"),
    (b"Name,Email\x00\x00\x01\x02" * 50, "The file is not text (CSV) nor an Excel workbook (XLSX)"),
])
def test_what_a_file_that_is_not_a_spreadsheet_is_is_said(content, what):
    with pytest.raises(SheetError) as refused:
        read_sheet(content=content, file_name="members.csv")
    assert str(refused.value).startswith(what)


def test_a_csv_whose_first_header_starts_like_a_signature_is_still_text():
    sheet = read_sheet(content=b"PK number,Name\r\n1,Ann Lee\r\n", file_name="members.xlsx")
    assert sheet.headers == ["PK number", "Name"] and sheet.rows == [(2, ["1", "Ann Lee"])]


def test_a_balance_column_of_a_service_named_with_its_unit_is_read(practice):
    """"Neurotoxin (units) balance" is the balance of the service "Neurotoxin (units)" (the demo's)."""
    from billing.sheets.columns import ServiceRef, guess_mapping

    services = [ServiceRef("neurotoxin-units", "Neurotoxin (units)", False), ServiceRef("hydrafacial", "HydraFacial", False)]
    mapping = guess_mapping(headers=["Member #", "Neurotoxin (units) balance", "HydraFacial balance"], services=services)
    assert mapping.columns == {0: "member_number", 1: "balance:neurotoxin-units", 2: "balance:hydrafacial"}
    assert not mapping.problems and not mapping.suggestions
