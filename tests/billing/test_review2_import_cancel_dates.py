"""A member who left and joined again, the sheet keeping her old cancel date: her row says Active
and was refused as contradicting that date; it is imported as active. Without a status, such a row
is asked about rather than imported as cancelled (or active) on a guess."""

from billing.models import ImportStatus
from memberships.models import Membership

from .test_import_real_sheets import command, errors, ledger_counts

SHEET = ("Name,Email,Plan,Member Since,Status,Cancel Date\r\n"
         "Renée Dubois,renee@example.com,Glow,5/1/2024,Active,3/1/2023\r\n"
         "Cy Park,cy@example.com,Glow,1/3/2024,Cancelled,3/1/2025\r\n")


def test_a_member_who_joined_again_after_an_old_cancel_date_is_imported_as_the_status_says(glow, practice,
                                                                                            tmp_path):
    out, batch = command(tmp_path, SHEET.encode())
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert dict(Membership.objects.values_list("member__first_name", "status")) == {
        "Renée": "active", "Cy": "cancelled"}


def test_a_cancel_date_before_the_join_date_without_a_status_is_asked_about(glow, practice, tmp_path):
    out, batch = command(tmp_path, SHEET.replace("Active,3/1/2023", ",3/1/2023").encode())
    assert batch.status == ImportStatus.REJECTED
    assert errors(batch) == [(2, "Status", "cancelled on 2023-03-01 ('Cancel Date'), before joining on 2024-05-01: "
                                           "joined again? Say active or cancelled in the Status column")]
    assert ledger_counts() == (0, 0, 0, 0)
