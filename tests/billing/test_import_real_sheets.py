"""Membership spreadsheets as practices really export them, run through the real import (the command
and the manager's page): what the manager is told, row by row, and that nothing is half-imported or
doubled, however often the same file comes in."""

import io
from datetime import date

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from billing.models import Discrepancy, ImportBatch, ImportStatus, SheetRow
from billing.reconciliation.runs import run_reconciliation
from integrations.models import Delivery
from memberships import services
from memberships.errors import LedgerError
from memberships.models import AuditLog, Event, LedgerEntry, Member, Membership, Service
from tests.factories import MemberFactory, TierFactory

from .test_import import NOW


def command(tmp_path, content: bytes, name="members.csv", *args) -> tuple[str, ImportBatch]:
    """Run `import_members` on the file as a manager would; its output and the batch it left."""
    path = tmp_path / name
    path.write_bytes(content)
    out = io.StringIO()
    try:
        call_command("import_members", str(path), *args, stdout=out)
    except CommandError as refused:
        out.write(f"\n{refused}")
    return out.getvalue(), ImportBatch.objects.latest("pk")


def errors(batch) -> list[tuple[int, str, str]]:
    return [(e["line"], e["column"], e["message"]) for e in batch.errors]


def ledger_counts():
    return (Member.objects.count(), Membership.objects.count(), LedgerEntry.objects.count(), Event.objects.count())


def test_one_person_on_two_rows_by_name_and_birth_date_is_refused_not_imported_twice(glow, practice, tmp_path):
    """A sheet without email or mobile recognises people by name and date of birth. Two rows of one
    person (one with an accent the other lacks) were two members, and each import of the file again
    added two more: neither row could be told from the other."""
    sheet = ("Client Name,DOB,Plan,Member Since\r\n"
             "Renée Dubois,5/1/1980,Glow,1/3/2024\r\n"
             "Cy Park,7/4/1975,Glow,1/3/2024\r\n"
             "Renee  Dubois,05/01/1980,glow,2024-01-03\r\n").encode("utf-8-sig")
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [
        (2, "DOB", "Renée Dubois born 1980-05-01 is also on line 4: the same person twice? Keep one row "
                   "(one person is one member)"),
        (4, "DOB", "Renee Dubois born 1980-05-01 is also on line 2: the same person twice? Keep one row "
                   "(one person is one member)"),
    ]
    assert "line 4, column 'DOB': Renee Dubois born 1980-05-01 is also on line 2" in out
    assert ledger_counts() == (0, 0, 0, 0)


def test_a_row_whose_name_and_birth_date_two_members_share_is_asked_about_not_added(glow, practice, tmp_path):
    """The ledger already has that person twice (registered at the desk and imported before): the
    row is one of them. It was matched to neither and created a third member, a fourth the next time."""
    for number in ("M000007", "M000008"):
        MemberFactory(practice=practice, member_number=number, first_name="Renée", last_name="Dubois", email="",
                      phone="", date_of_birth=date(1980, 5, 1))
    sheet = "Client Name,DOB,Plan,Member Since\r\nRenée Dubois,5/1/1980,Glow,1/3/2024\r\n".encode()
    before = ledger_counts()
    for _ in range(2):
        out, batch = command(tmp_path, sheet)
        assert batch.status == ImportStatus.REJECTED
        assert errors(batch) == [(2, "Member number", "Renée Dubois could be member M000007 or M000008 (the same "
                                                      "name, and the same email, mobile or date of birth): add the "
                                                      "member number in a 'Member #' column to say which")]
        assert ledger_counts() == before
    with_number = "Member #,Client Name,DOB,Plan,Member Since\r\nM000008,Renée Dubois,5/1/1980,Glow,1/3/2024\r\n"
    out, batch = command(tmp_path, with_number.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert Member.objects.count() == 2 and Membership.objects.get().member.member_number == "M000008"


def test_headers_as_practices_write_them_are_read_and_reconciliation_compares_what_they_hold(glow, practice,
                                                                                                tmp_path):
    """'Client' (the name, 'Last, First'), 'Cell #' and 'Monthly' were left out: the file was refused
    for having no name column, the phone was never imported, and reconciliation never saw the price
    the member pays by the sheet."""
    sheet = ("Client,Email Address,Cell #,Plan,Member Since,Monthly,Notes\r\n"
             '"Dubois, Renée",Renee.Dubois@Example.com ,(415) 555-0101,Glow,1/3/2024,$199.00,botox 20u\r\n'
             '"Park, Cy",cy@example.com,415.555.0102,Glow,"Jan 3, 2024",$149,\r\n').encode("utf-8-sig")
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert "Client → full_name" in out and "Cell # → phone" in out and "Monthly → price" in out
    assert sorted(Member.objects.values_list("first_name", "last_name", "email", "phone")) == [
        ("Cy", "Park", "cy@example.com", "+14155550102"),
        ("Renée", "Dubois", "renee.dubois@example.com", "+14155550101")]
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    assert [(d.member_number, d.kind, d.message) for d in Discrepancy.objects.filter(last_seen_run=run)] == [
        (Member.objects.get(first_name="Cy").member_number, "price_mismatch",
         "Price is $149.00 in the spreadsheet, $199.00 for the ledger's tier")]


@pytest.fixture
def tasks_inline(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)


def upload(client, capture, content: bytes, name: str) -> str:
    """The manager uploads the file on the import page; the check runs (inline) and the page shows it."""
    with capture(execute=True):
        response = client.post(reverse("mirror:import_upload"), {"file": SimpleUploadedFile(name, content)})
    return client.get(response["Location"]).content.decode()


def confirm(client, capture, batch: ImportBatch) -> str:
    with capture(execute=True):
        response = client.post(reverse("mirror:import_confirm", args=[batch.pk]))
    return client.get(response["Location"]).content.decode()


def _with_totals_xlsx() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Client Name", "Email", "Plan", "Member Since", "Monthly Price", "HydraFacial balance"])
    sheet.append(["Renée Dubois", "renee@example.com", "Glow", date(2024, 1, 3), 199, 1])
    sheet.append(["Cy Park", "cy@example.com", "Glow", 45292, 199, 2])
    sheet.append([None] * 6)
    sheet.append(["Grand Total", None, None, None, "=SUM(E2:E3)", "=SUM(F2:F3)"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


CSV_WITH_TOTALS = ("Member #,Name,Email,Plan,Member Since,Monthly\r\n"
                   "M1,Renée Dubois,renee@example.com,Glow,1/3/2024,$199.00\r\n"
                   ",,,,,\r\n"
                   "M2,Cy Park,cy@example.com,Glow,1/4/2024,$199.00\r\n"
                   ",,,,,\r\n"
                   ",,,,,\r\n"
                   "Total:,,,,,\"$398.00\"\r\n").encode()


@pytest.mark.parametrize("name, content, line, label", [
    ("members.csv", CSV_WITH_TOTALS, 7, "Total:"), ("members.xlsx", _with_totals_xlsx(), 5, "Grand Total")])
def test_the_totals_line_under_the_members_is_left_out_and_said_so(client, manager, glow, practice, tasks_inline,
                                                                   django_capture_on_commit_callbacks, tmp_path,
                                                                   name, content, line, label):
    """The totals line a spreadsheet keeps under its members was read as a member with no tier and no
    join date: the whole file was refused until the manager deleted it."""
    client.force_login(manager)
    capture = django_capture_on_commit_callbacks
    page = upload(client, capture, content, name)
    assert f"Line {line} left out: a totals line (&#x27;{label}&#x27;), not a member." in page
    assert ">Checked</span> no problems" in page
    checked = ImportBatch.objects.get()
    assert (checked.total_rows, checked.created_count, checked.rejected_count) == (2, 2, 0)
    page = confirm(client, capture, checked)
    assert "Imported. Re-importing the same file changes nothing." in page
    assert sorted(Member.objects.values_list("first_name", flat=True)) == ["Cy", "Renée"]
    before = ledger_counts()
    out, again = command(tmp_path, content, name)
    assert f"Line {line} left out: a totals line ('{label}'), not a member" in out
    assert (again.status, again.unchanged_count, again.created_count) == (ImportStatus.IMPORTED, 2, 0)
    assert ledger_counts() == before


def test_tier_names_written_otherwise_than_the_catalogue_are_read_as_the_one_tier_they_name(glow, practice,
                                                                                              tmp_path):
    """'Glow Membership' or 'The Luxe Plan' in the Plan column were unknown tiers: every such row was
    refused. A name that fits two tiers still is, naming them."""
    TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    sheet = ("Name,Email,Plan,Member Since,Monthly\r\n"
             "Renée Dubois,renee@example.com,Glow Membership,1/3/2024,$199\r\n"
             "Cy Park,cy@example.com,glow ,1/3/2024,$199\r\n"
             "Di Park,di@example.com,The Luxe Plan,1/3/2024,$349\r\n"
             "Al Lee,al@example.com,LUXE MEMBER,1/3/2024,$349\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert ("Plan → tier: 'Glow Membership' read as the Glow tier; 'LUXE MEMBER' read as the Luxe tier; "
            "'The Luxe Plan' read as the Luxe tier") in out
    assert dict(Membership.objects.values_list("member__first_name", "tier__code")) == {
        "Renée": "glow", "Cy": "glow", "Di": "luxe", "Al": "luxe"}
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    assert run.total == 0
    again_out, again = command(tmp_path, sheet)
    assert (again.status, again.unchanged_count) == (ImportStatus.IMPORTED, 4)

    TierFactory(practice=practice, code="glow-club", name="Glow Club", price_cents=9900)
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(2, "Plan", "unknown tier 'Glow Membership' (tiers: Glow, Glow Club, Luxe)")]


def test_balances_written_with_words_are_read_when_the_words_name_the_columns_service(glow, practice, tmp_path):
    """'2 facials' or '$50 credit' in a balance column was 'not a whole number of units': the row was
    refused. Words that name another service still refuse it, saying why."""
    header = "Name,Email,Plan,Member Since,HydraFacials left,Product credit balance\r\n"
    rows = ("Renée Dubois,renee@example.com,Glow,1/3/2024,2 facials,$50 credit\r\n"
            "Cy Park,cy@example.com,Glow,1/3/2024,1 HydraFacial left,25 dollars\r\n"
            "Di Park,di@example.com,Glow,1/3/2024,0,\r\n")
    wrong = "Al Lee,al@example.com,Glow,1/3/2024,2 peels,\r\n"
    out, batch = command(tmp_path, (header + rows + wrong).encode())
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(5, "HydraFacials left", "'2 peels' does not say HydraFacial: write the HydraFacial "
                                                      "balance as a number")]
    assert ledger_counts() == (0, 0, 0, 0)
    out, batch = command(tmp_path, (header + rows).encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    opening = {(m.member.first_name, b.service.code): b.balance for m in Membership.objects.select_related("member")
               for b in m.balances.select_related("service") if b.balance}
    assert opening == {("Renée", "hydrafacial"): 2, ("Renée", "product-credit"): 5000, ("Cy", "hydrafacial"): 1,
                       ("Cy", "product-credit"): 2500}


EUROPEAN = ("Last Name;First Name;Email;Phone;Plan;Member Since;Monthly;Product credit balance;Notes\r\n"
            "Dubois;Renée;renee@example.com;+44 20 7946 0958;Glow;03.01.2024;199,00;50,00;botox 20u\r\n"
            "O’Neil;Ñaki;naki@example.com;(415) 555-0102;Glow;14.02.2024;199;12,5;\r\n"
            "Muñoz;Zoë;zoe@example.com;415.555.0103;Glow;2024-01-03;€199,00;1.299,00;\r\n"
            "Lee;Al;al@example.com;415.555.0104;Glow;2024-01-03;$199.00;$1,299.50;\r\n").encode("cp1252")


def test_a_european_export_separated_by_semicolons_reads_its_decimal_commas(glow, practice, tmp_path):
    """Excel in a European locale writes 'Renée' in Windows-1252, separates columns with ';' and
    writes '199,00': every amount was refused as ambiguous (a comma only separated thousands), so the
    whole file was, and reconciliation would have compared nothing."""
    content = EUROPEAN
    out, batch = command(tmp_path, content)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert "Monthly → price: amounts read with a comma before the cents (199,00)" in out
    credit = {m.member.first_name: m.balances.get(service__code="product-credit").balance
              for m in Membership.objects.select_related("member")}
    assert credit == {"Renée": 5000, "Ñaki": 1250, "Zoë": 129900, "Al": 129950}
    assert sorted(Member.objects.values_list("last_name", flat=True)) == ["Dubois", "Lee", "Muñoz", "O’Neil"]
    assert run_reconciliation(practice=practice, now=NOW, sources={}).total == 0
    again_out, again = command(tmp_path, content)
    assert (again.status, again.unchanged_count) == (ImportStatus.IMPORTED, 4)

    ambiguous = content.replace(b"1.299,00", b"1,299")
    out, batch = command(tmp_path, ambiguous)
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(4, "Product credit balance", "'1,299' is ambiguous in a file whose columns are "
                                                           "separated by ';', where a comma marks decimals: write "
                                                           "1299 or 1.299")]


def test_clinical_notes_in_the_sheet_reach_no_log_timeline_or_outbound_message(client, manager, glow, practice,
                                                                                tasks_inline, caplog, tmp_path,
                                                                                django_capture_on_commit_callbacks):
    """A 'Notes' column holds treatment details; the sheet is checked with a bad row, imported, and
    imported again: the details never reach the log, the member's timeline, the ledger or anything
    queued for the processor, the record, SMS or email."""
    caplog.set_level("DEBUG")
    sheet = ("Name,Email,Phone,Plan,Member Since,Monthly,Status,Notes\r\n"
             "Renée Dubois,renee@example.com,(415) 555-0101,Glow,1/3/2024,$199,Active,botox 20u glabella\r\n"
             "Cy Park,cy@example.com,(415) 555-0102,Glow,1/3/2024,$199,Cancelled,filler reaction - lips, 1ml\r\n"
             "Di Park,di@example.com,(415) 555-0103,Platinum,1/3/2024,$199,Active,\"Xeomin 40u, brow\"\r\n")
    client.force_login(manager)
    upload(client, django_capture_on_commit_callbacks, sheet.encode(), "members.csv")
    assert ImportBatch.objects.get().rejected_count == 1
    command(tmp_path, sheet.encode(), "members.csv", "--only-valid")
    command(tmp_path, sheet.encode(), "members.csv", "--only-valid")
    assert Member.objects.count() == 2
    written = [r.getMessage() for r in caplog.records]
    written += [f"{e.summary} {e.payload}" for e in Event.objects.all()]
    written += [f"{e.reason} {e.actor_label}" for e in LedgerEntry.objects.all()]
    written += [f"{d.note} {d.last_error} {d.result}" for d in Delivery.objects.all()]
    written += [str(m.__dict__) for m in Member.objects.all()] + [str(m.__dict__) for m in Membership.objects.all()]
    assert Event.objects.exists() and written
    for detail in ("botox", "20u", "glabella", "filler", "reaction", "lips", "xeomin", "brow"):
        assert not [text for text in written if detail in text.lower()], detail


@pytest.mark.parametrize("household", ["", "Dubois"], ids=["no household column", "one household"])
def test_one_person_on_two_rows_with_one_email_is_the_same_person_twice_household_or_not(glow, practice, tmp_path,
                                                                                           household):
    """A member who cancelled and joined again, listed twice with one email. The error pointed to a
    Household column; with one, both rows were imported as two members of that name, and every import
    of the file again added two more (neither row could be told from the other)."""
    sheet = ("Name,Email,Plan,Member Since,Status,Household\r\n"
             f"Renée Dubois,renee@example.com,Glow,1/3/2024,Cancelled,{household}\r\n"
             f"Ben Dubois,renee@example.com,Glow,1/3/2024,Active,{household}\r\n"
             f"renee  dubois,Renee@Example.com,Glow,1/3/2025,Active,{household}\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.REJECTED
    same_person = [
        (2, "Email", "Renée Dubois with the email renee@example.com is also on line 4: the same person twice? Keep "
                     "one row (one person is one member)"),
        (4, "Email", "renee dubois with the email renee@example.com is also on line 2: the same person twice? Keep "
                     "one row (one person is one member)")]
    shared = [(3, "Email", "the email renee@example.com is also on lines 2, 4: two members cannot share one (a "
                           "Household column allows it for one household)")]
    assert sorted(errors(batch)) == sorted(same_person + ([] if household else shared))
    assert ledger_counts() == (0, 0, 0, 0)


def test_a_row_two_members_of_its_name_and_email_could_be_is_asked_about_not_added(glow, practice, tmp_path):
    for number in ("M000007", "M000008"):
        MemberFactory(practice=practice, member_number=number, first_name="Renée", last_name="Dubois",
                      email="renee@example.com", phone="")
    sheet = "Name,Email,Plan,Member Since,Household\r\nRenée Dubois,renee@example.com,Glow,1/3/2024,Dubois\r\n"
    before = ledger_counts()
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(2, "Member number", "Renée Dubois could be member M000007 or M000008 (the same name, "
                                                  "and the same email, mobile or date of birth): add the member "
                                                  "number in a 'Member #' column to say which")]
    assert ledger_counts() == before


def test_cells_written_as_people_fill_spreadsheets_are_read_as_they_mean(glow, practice, tmp_path):
    """'N/A' for an email, '-' for a phone or a balance, Excel's accounting zero '$ -', '$199/mo',
    'none' for a Stripe customer, a status with a note after it ('Cancelled 3/1/2024', 'Active
    (autopay)', 'Canceled - moved away', 'Expired'): each was an error on its row ('none' was even
    taken as a customer id), so a whole real sheet was refused."""
    sheet = ("Name,Email,Phone,DOB,Plan,Member Since,Monthly,HydraFacial balance,Product credit balance,Status,"
             "Stripe customer\r\n"
             "Renée Dubois,N/A,(415) 555-0101,n/a,Glow,1/3/2024,$199/mo,-,\" $-   \",Active (autopay),none\r\n"
             "Cy Park,cy@example.com,-,,Glow,1/3/2024,199 per month,1,$ -,Cancelled 3/1/2024,\r\n"
             "Di Park,di@example.com,none,,Glow,1/3/2024,$199.00 monthly,0,$25.00,Canceled - moved away,\r\n"
             "Al Lee,al@example.com,?,,Glow,1/3/2024,$199.00,0,$0.00,Expired,cus_AL\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    people = {m.first_name: (m.email, m.phone, m.processor_customer_id) for m in Member.objects.all()}
    assert people == {"Renée": ("", "+14155550101", ""), "Cy": ("cy@example.com", "", ""),
                      "Di": ("di@example.com", "", ""), "Al": ("al@example.com", "", "cus_AL")}
    assert dict(Membership.objects.values_list("member__first_name", "status")) == {
        "Renée": "active", "Cy": "cancelled", "Di": "cancelled", "Al": "cancelled"}
    assert sorted(SheetRow.objects.values_list("price_cents", flat=True)) == [19900] * 4
    assert run_reconciliation(practice=practice, now=NOW, sources={}).total == 0
    again_out, again = command(tmp_path, sheet)
    assert (again.status, again.unchanged_count) == (ImportStatus.IMPORTED, 4)

    out, batch = command(tmp_path, sheet.replace(b"Expired", b"N/A"))
    assert errors(batch) == [(5, "Status", "unknown status 'N/A' (use active, paused, past due or cancelled)")]


def test_join_dates_written_out_as_people_write_them_are_read(glow, practice, tmp_path):
    """'January 3rd, 2024', 'Sept 9, 2024', '2024.02.01', '3rd March 2024' beside the forms already
    read (1/3/2024, 2024-01-03, 03.01.2024, Jan 3, 2024, an Excel serial): each was 'not a date'."""
    written = ['"January 3rd, 2024"', '"Sept 9, 2024"', "2024.02.01", "3rd March 2024", "1/3/2024", "2024-01-03",
               "03.01.2024", '"Jan 3, 2024"', "45292"]
    sheet = "Name,Email,Plan,Member Since\r\n" + "".join(
        f"Member{i} Park,m{i}@example.com,Glow,{date_text}\r\n" for i, date_text in enumerate(written))
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    started = dict(Membership.objects.values_list("member__first_name", "started_at__date"))
    assert [started[f"Member{i}"] for i in range(len(written))] == [
        date(2024, 1, 3), date(2024, 9, 9), date(2024, 2, 1), date(2024, 3, 3), date(2024, 1, 3), date(2024, 1, 3),
        date(2024, 1, 3), date(2024, 1, 3), date(2024, 1, 1)]


def test_a_new_member_whose_name_is_already_a_members_or_another_new_rows_is_worth_a_look(
        client, manager, glow, practice, tasks_inline, django_capture_on_commit_callbacks, tmp_path):
    """The same person twice, once with a typo in the email (no mobile, no birth date to tell): both
    rows were created without a word, two members for one person. Namesakes are often two people, so
    the import goes on, but the manager is shown who to look at."""
    MemberFactory(practice=practice, member_number="M000007", first_name="Renée", last_name="Dubois",
                  email="renee@exmaple.com", phone="")
    sheet = ("Name,Email,Plan,Member Since\r\n"
             "Renee Dubois,renee@example.com,Glow,1/3/2024\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024\r\n"
             "Cy  Park,cy.park@example.com,Glow,1/3/2024\r\n").encode()
    client.force_login(manager)
    page = upload(client, django_capture_on_commit_callbacks, sheet, "members.csv")
    assert "Worth a look (2)" in page and ">Checked</span> no problems" in page
    checked = ImportBatch.objects.get()
    assert [(w["line"], w["message"]) for w in checked.report["warnings"]] == [
        (2, "new member Renee Dubois, but member M000007 has this name: if it is the same person, give their "
            "member number or the email or mobile on their chart"),
        (4, "Cy Park is also a new member on line 3, with another email or mobile: the same person twice?")]
    assert "line 4: Cy Park is also a new member on line 3" in command(tmp_path, sheet, "members.csv",
                                                                      "--dry-run")[0]
    # The member it names was shown: the page left an audit row for them.
    assert AuditLog.objects.filter(action="import_detail", user=manager, member__member_number="M000007").exists()


def test_heading_lines_between_members_are_left_out_and_rows_under_a_cancelled_heading_need_a_status(
        glow, practice, tmp_path):
    """A sheet kept in sections: 'ACTIVE MEMBERS', then 'CANCELLED MEMBERS' above the ones who left,
    whose Status cells are empty. Each heading was refused as a member with no tier; and with the
    headings deleted, the members under 'CANCELLED MEMBERS' would have been imported as active."""
    sheet = ("Name,Email,Plan,Member Since,Status\r\n"
             "ACTIVE MEMBERS,,,,\r\n"
             "Renée Dubois,renee@example.com,Glow,1/3/2024,\r\n"
             ",,,,\r\n"
             "--- Cancelled members ---,,,,\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024,\r\n"
             "Di Park,di@example.com,Glow,1/3/2024,Cancelled\r\n")
    out, batch = command(tmp_path, sheet.encode())
    assert "Line 2 left out: a heading ('ACTIVE MEMBERS'), not a member" in out
    assert "Line 5 left out: a heading ('--- Cancelled members ---'), not a member" in out
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(6, "Status", "under the heading '--- Cancelled members ---' (line 5), but its Status "
                                           "cell is empty: a member without a status is imported as active; say "
                                           "cancelled (or active) in a Status column")]
    assert ledger_counts() == (0, 0, 0, 0)
    out, batch = command(tmp_path, sheet.replace("Glow,1/3/2024,\r\nDi", "Glow,1/3/2024,Cancelled\r\nDi").encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert dict(Membership.objects.values_list("member__first_name", "status")) == {
        "Renée": "active", "Cy": "cancelled", "Di": "cancelled"}


def test_a_cancel_date_column_cancels_the_members_it_dates_and_is_not_left_out(glow, practice, tmp_path):
    """'Cancel Date' was a column left out: members who had left, their Status cell empty, were
    imported as active (entitled, their balances usable). A past date now cancels them; one that
    contradicts the status is an error; a later one (leaving then) is imported as it is, worth a look."""
    sheet = ("Name,Email,Plan,Member Since,Status,Cancel Date\r\n"
             "Renée Dubois,renee@example.com,Glow,1/3/2024,,\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024,,3/1/2025\r\n"
             "Di Park,di@example.com,Glow,1/3/2024,Active,3/1/2025\r\n"
             "Al Lee,al@example.com,Glow,1/3/2024,Active,12/31/2099\r\n")
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(4, "Status", "says active, but the membership was cancelled on 2025-03-01 "
                                           "('Cancel Date'): make them agree")]
    assert ledger_counts() == (0, 0, 0, 0)
    out, batch = command(tmp_path, sheet.replace("Active,3/1/2025", "Cancelled,3/1/2025").encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert dict(Membership.objects.values_list("member__first_name", "status")) == {
        "Renée": "active", "Cy": "cancelled", "Di": "cancelled", "Al": "active"}
    assert [(w["line"], w["column"], w["message"]) for w in batch.report["warnings"]] == [
        (5, "Cancel Date", "leaves on 2099-12-31: imported as active; cancel the membership at the desk (at the "
                           "period end) so it is not renewed")]
    assert run_reconciliation(practice=practice, now=NOW, sources={}).total == 0


def test_a_member_who_cancelled_on_a_date_is_paid_through_that_period_not_todays(glow, practice, tmp_path):
    """Frozen credit stays usable until the paid period ends (the practice's setting): a member who
    cancelled in March 2025 was given the period around the import's day, so their imported balance
    was usable for up to another month."""
    sheet = ("Name,Email,Plan,Member Since,Status,Cancel Date,HydraFacials left\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024,Cancelled,3/10/2025,1\r\n")
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    membership = Membership.objects.get()
    assert (membership.current_period_start.date(), membership.current_period_end.date()) == (
        date(2025, 3, 3), date(2025, 4, 3))
    assert membership.paid_through <= membership.cancelled_at
    facial = Service.objects.get(code="hydrafacial")
    with pytest.raises(LedgerError):
        services.redeem_entitlement(membership=membership, service=facial, quantity=1, actor=services.Actor.system(),
                                    idempotency_key="after-import", now=timezone.now())


def test_a_cancelled_member_listed_with_a_balance_but_no_date_cannot_spend_it_after_the_import(glow, practice,
                                                                                                tmp_path):
    """'Cancelled', '2 facials left', no date: the import gave the period around its own day, so the
    frozen facials were redeemable for up to a month by someone who may have left years ago. Now they
    are not, the check says so, and a paid-through date keeps them usable until then."""
    sheet = ("Name,Email,Plan,Member Since,Status,HydraFacials left,Paid through\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024,Cancelled,2,\r\n"
             "Di Park,di@example.com,Glow,1/3/2024,Cancelled,1,12/31/2099\r\n")
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert [(w["line"], w["message"]) for w in batch.report["warnings"]] == [
        (2, "cancelled with a balance, but no cancel date or paid-through date: the balance is frozen and not "
            "usable from the import; give the date they paid through to keep it usable until then")]
    facial = Service.objects.get(code="hydrafacial")

    def redeem(first_name):
        membership = Membership.objects.get(member__first_name=first_name)
        return services.redeem_entitlement(membership=membership, service=facial, quantity=1,
                                           actor=services.Actor.system(), idempotency_key=f"r-{first_name}",
                                           now=timezone.now())
    with pytest.raises(LedgerError):
        redeem("Cy")
    assert redeem("Di").quantity == -1


def test_a_workbook_whose_members_are_on_several_sheets_says_the_others_are_not_read(glow, practice, tmp_path):
    """Members kept on two tabs, 'Active' and 'Cancelled': only the first was read, without a word,
    so the cancelled members were never imported nor reported missing."""
    book = openpyxl.Workbook()
    active = book.active
    active.title = "Active"
    active.append(["Name", "Email", "Plan", "Member Since"])
    active.append(["Renée Dubois", "renee@example.com", "Glow", date(2024, 1, 3)])
    cancelled = book.create_sheet("Cancelled")
    cancelled.append(["Name", "Email", "Plan", "Member Since", "Status"])
    cancelled.append(["Cy Park", "cy@example.com", "Glow", date(2024, 1, 3), "Cancelled"])
    book.create_sheet("Old notes").sheet_state = "hidden"
    buffer = io.BytesIO()
    book.save(buffer)
    out, batch = command(tmp_path, buffer.getvalue(), "members.xlsx")
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert ("worth a look, file: only the workbook's first sheet, 'Active', is read; its other sheets "
            "('Cancelled') are not: import each as a file of its own") in out


def test_a_family_name_that_looks_like_a_placeholder_is_kept(glow, practice, tmp_path):
    """'Na' is a family name, not 'N/A': it was dropped, the member imported without a last name."""
    sheet = "First Name,Last Name,Email,Plan,Member Since\r\nMin,Na,min@example.com,Glow,1/3/2024\r\n"
    out, batch = command(tmp_path, sheet.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert Member.objects.get().last_name == "Na"


def test_a_row_is_named_by_the_row_number_excel_shows_when_a_notes_cell_spans_lines(glow, practice, tmp_path):
    """A Notes cell with line breaks spans several lines of the CSV: the rows after it were named by
    the file's text line, so 'line 6' sent the manager to the wrong row of the sheet (row 4 in Excel)."""
    sheet = ('Name,Email,Plan,Member Since,Notes\r\n'
             'Renée Dubois,renee@example.com,Glow,1/3/2024,"prefers mornings\r\nallergic to latex\r\ncall first"\r\n'
             ',,,,\r\n'
             'Cy Park,cy@example.com,Platinum,1/3/2024,\r\n')
    out, batch = command(tmp_path, sheet.encode())
    assert errors(batch) == [(4, "Plan", "unknown tier 'Platinum' (tiers: Glow)")]
    assert "line 4, column 'Plan': unknown tier 'Platinum'" in out
