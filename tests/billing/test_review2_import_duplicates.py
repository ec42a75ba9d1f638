"""Two rows of one name that something tells apart are two people, not one person twice: a mother
and her daughter of one name sharing the family email (their birth dates differ), twins whose full
first names differ, two members the ledger already has listed by their member numbers."""

from datetime import date

from billing.models import ImportStatus
from memberships.models import Member, Membership
from tests.factories import MemberFactory

from .test_import_real_sheets import command, errors


def test_a_mother_and_daughter_of_one_name_sharing_the_household_email_are_two_members(glow, practice, tmp_path):
    sheet = ("Name,Email,DOB,Plan,Member Since,Household\r\n"
             "Maria Lopez,lopez@example.com,3/2/1970,Glow,1/3/2024,Lopez\r\n"
             "Maria Lopez,lopez@example.com,8/9/1998,Glow,1/3/2024,Lopez\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert sorted(Member.objects.values_list("date_of_birth", flat=True)) == [date(1970, 3, 2), date(1998, 8, 9)]
    assert [(w["line"], w["message"]) for w in batch.report["warnings"]] == [
        (3, "Maria Lopez is also a new member on line 2, born another day or of another first name: the same "
            "person twice?")]
    out, batch = command(tmp_path, sheet)           # the same file again finds both, adds no one
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert Member.objects.count() == 2 and Membership.objects.count() == 2


def test_twins_whose_full_first_names_differ_are_two_members(glow, practice, tmp_path):
    sheet = ("Name,DOB,Plan,Member Since\r\n"
             "Mary Ann Smith,4/4/1990,Glow,1/3/2024\r\n"
             "Mary Beth Smith,4/4/1990,Glow,1/3/2024\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert sorted(Member.objects.values_list("first_name", flat=True)) == ["Mary Ann", "Mary Beth"]


def test_the_ledgers_two_members_of_one_name_and_email_listed_by_number_are_imported(glow, practice, tmp_path):
    for number in ("M000007", "M000008"):
        MemberFactory(practice=practice, member_number=number, first_name="Maria", last_name="Lopez",
                      email="lopez@example.com", phone="")
    sheet = ("Member #,Name,Email,Plan,Member Since,Household\r\n"
             "M000007,Maria Lopez,lopez@example.com,Glow,1/3/2024,Lopez\r\n"
             "M000008,Maria Lopez,lopez@example.com,Glow,1/3/2024,Lopez\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert Member.objects.count() == 2
    assert sorted(Membership.objects.values_list("member__member_number", flat=True)) == ["M000007", "M000008"]


def test_one_person_twice_with_one_birth_date_missing_is_still_refused(glow, practice, tmp_path):
    sheet = ("Name,Email,DOB,Plan,Member Since,Household\r\n"
             "Renée Dubois,renee@example.com,5/1/1980,Glow,1/3/2024,Dubois\r\n"
             "Renee Dubois,renee@example.com,,Glow,1/3/2025,Dubois\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.REJECTED
    assert [(line, column) for line, column, _ in errors(batch)] == [(2, "Email"), (3, "Email")]
    assert Member.objects.count() == 0
