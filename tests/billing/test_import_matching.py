"""Who a row is, when the ledger already has someone with its email or mobile: a row never gives an
existing member's email or mobile to a second member, and a row matched by email or mobile that
names someone else does not rename that member. And a date of birth written as an Excel serial in a
CSV is read for members born before 1954 too. An export with a title row or merged group headers
above its column names is read from its column names."""

import io
from datetime import date

import openpyxl

from billing.models import ImportStatus
from memberships.models import Member, Membership
from tests.factories import MemberFactory

from .test_import import run

HEADER = "Member #,First Name,Last Name,Email,Mobile,Membership,Member since"


def csv(*rows, header=HEADER):
    return "\n".join([header, *rows]).encode()


def problems(batch):
    return [(e["line"], e["column"], e["message"]) for e in batch.errors]


def test_a_new_member_number_with_an_existing_members_email_is_refused_not_a_second_member(glow, practice):
    ana = MemberFactory(practice=practice, member_number="M001", first_name="Ana", last_name="Silva",
                        email="ana@example.com", phone="+14155550101")
    batch = run(practice, csv("M900,Ana,Silva,ANA@example.com ,,Glow,2025-01-05"))
    assert batch.status == ImportStatus.REJECTED
    assert problems(batch) == [(2, "Email", "the email ana@example.com is already member M001's (Ana Silva): "
                                            "two members cannot share one (a Household column allows it "
                                            "for one household)")]
    assert list(Member.objects.values_list("member_number", flat=True)) == ["M001"]
    assert not Membership.objects.filter(member=ana).exists()


def test_a_known_member_number_cannot_take_another_members_mobile(glow, practice):
    MemberFactory(practice=practice, member_number="M001", first_name="Ana", last_name="Silva",
                  email="ana@example.com", phone="+14155550101")
    ben = MemberFactory(practice=practice, member_number="M002", first_name="Ben", last_name="Okafor",
                        email="ben@example.com", phone="+14155550102")
    batch = run(practice, csv("M002,Ben,Okafor,ben@example.com,(415) 555-0101,Glow,2025-01-05"))
    assert batch.status == ImportStatus.REJECTED
    assert [(line, column) for line, column, _ in problems(batch)] == [(2, "Mobile")]
    assert "already member M001's (Ana Silva)" in problems(batch)[0][2]
    ben.refresh_from_db()
    assert ben.phone == "+14155550102"


def test_a_household_column_lets_a_new_member_share_an_existing_members_email(glow, practice):
    MemberFactory(practice=practice, member_number="M001", first_name="Ana", last_name="Silva",
                  email="ana@example.com", phone="+14155550101")
    batch = run(practice, csv("M002,Ben,Silva,ana@example.com,,Glow,2025-01-05,silva",
                              header=HEADER + ",Household"))
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert Member.objects.filter(email="ana@example.com").count() == 2


def test_a_row_matched_by_email_that_names_someone_else_does_not_rename_the_member(glow, practice):
    john = MemberFactory(practice=practice, first_name="John", last_name="Smith", email="smiths@example.com",
                         phone="+14155550111")
    header = "First Name,Last Name,Email,Mobile Phone,Membership,Start Date"
    check = run(practice, csv("Jane,Smith,smiths@example.com,,Glow,3/7/24", header=header), dry_run=True)
    assert check.report["actions"] == [] and check.changed_count == 0
    batch = run(practice, csv("Jane,Smith,smiths@example.com,,Glow,3/7/24", header=header))
    assert batch.status == ImportStatus.REJECTED
    assert problems(batch) == problems(check)
    assert problems(batch) == [(2, "First Name", f"the email or mobile is that of John Smith "
                                                 f"({john.member_number}), not of Jane Smith: correct the row, "
                                                 f"or a Household column with the member's household makes "
                                                 f"Jane Smith a member of their own")]
    john.refresh_from_db()
    assert (john.first_name, john.last_name) == ("John", "Smith")
    assert not Membership.objects.filter(member=john).exists()


def test_a_row_matched_by_mobile_with_the_same_first_name_still_updates_the_rest(glow, practice):
    zoe = MemberFactory(practice=practice, first_name="Zoe", last_name="Nguyen", email="", phone="+16265550106")
    header = "First Name,Last Name,Email,Mobile Phone,Membership,Start Date"
    batch = run(practice, csv("ZOË,Tran,zoe@example.com,+1 (626) 555-0106,Glow,3/7/24", header=header))
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    zoe.refresh_from_db()
    assert (zoe.last_name, zoe.email) == ("Tran", "zoe@example.com")
    assert Membership.objects.filter(member=zoe).count() == 1


def test_an_excel_serial_date_of_birth_before_1954_in_a_csv_is_read(glow, practice):
    header = "First Name,Last Name,Email,Membership,Start Date,Date of Birth"
    batch = run(practice, csv("Edith,Moore,edith@example.com,Glow,2024-03-07,10959",
                              "Hal,Moore,hal@example.com,Glow,2024-03-07,18264", header=header))
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert Member.objects.get(first_name="Edith").date_of_birth == date(1930, 1, 1)
    assert Member.objects.get(first_name="Hal").date_of_birth == date(1950, 1, 1)


def test_a_start_date_that_is_a_small_number_is_still_not_a_date(glow, practice):
    header = "First Name,Last Name,Email,Membership,Start Date"
    batch = run(practice, csv("Edith,Moore,edith@example.com,Glow,10959", header=header))
    assert batch.status == ImportStatus.REJECTED
    assert [(line, column) for line, column, _ in problems(batch)] == [(2, "Start Date")]


def test_a_workbook_with_merged_group_headers_above_its_column_names_is_read_from_them(glow, practice):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Client", None, "Contact", None, "Plan", None, None])
    sheet.merge_cells("A1:B1")
    sheet.merge_cells("C1:D1")
    sheet.merge_cells("E1:G1")
    sheet.append(["First Name", "Last Name", "Email", "Mobile Phone", "Membership", "Start Date",
                  "HydraFacial balance"])
    sheet.append(["Ana", "Silva", "ana@example.com", "(415) 555-0101", "Glow", date(2024, 3, 7), 2])
    sheet.append(["Ben", "Okafor", "ben@example.com", "(415) 555-0102", "Glow", "3/7/24", 1])
    book.create_sheet("Notes").append(["not members"])
    content = io.BytesIO()
    book.save(content)
    batch = run(practice, content.getvalue(), name="export.xlsx")
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert batch.total_rows == 2
    ana = Member.objects.get(first_name="Ana")
    assert (ana.last_name, ana.email, ana.phone) == ("Silva", "ana@example.com", "+14155550101")
    assert Membership.objects.get(member=ana).started_at.date() == date(2024, 3, 7)
    assert sorted(Member.objects.values_list("first_name", flat=True)) == ["Ana", "Ben"]
