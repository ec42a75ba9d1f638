"""Reconciliation right after a practice imports its real spreadsheet: what it reports must be true,
so a manager's first list of discrepancies is worth going through."""

import io

from django.core.management import call_command

from billing.models import Discrepancy, ImportBatch
from billing.reconciliation.runs import run_reconciliation
from memberships.models import Member, Membership, MembershipStatus
from tests.factories import MemberFactory

from .test_import import NOW


def test_cancelled_members_the_sheet_lists_at_0_or_their_old_price_are_no_price_discrepancy(glow, practice,
                                                                                              tmp_path):
    """A sheet keeps cancelled members with "$0" or their old price: each was a price discrepancy
    against the tier's price, though a cancelled membership bills nothing. The sheet's real
    differences are still found."""
    path = tmp_path / "members.csv"
    path.write_bytes(("Name,Email,Plan,Member Since,Monthly,Status\r\n"
                      "Renée Dubois,renee@example.com,Glow,1/3/2024,$199.00,Active\r\n"
                      "Cy Park,cy@example.com,Glow,1/3/2024,$0,Cancelled\r\n"
                      "Di Park,di@example.com,Glow,1/3/2024,$149.00,canceled\r\n"
                      "Al Lee,al@example.com,Glow,1/3/2024,$179.00,Active\r\n").encode())
    call_command("import_members", str(path), stdout=io.StringIO())
    assert Membership.objects.filter(status=MembershipStatus.CANCELLED).count() == 2
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    found = [(d.member_number, d.kind, d.message) for d in Discrepancy.objects.filter(last_seen_run=run)]
    assert found == [(Member.objects.get(first_name="Al").member_number, "price_mismatch",
                      "Price is $179.00 in the spreadsheet, $199.00 for the ledger's tier")]


def test_rows_an_import_of_only_the_valid_rows_skipped_are_reported_until_a_later_import_brings_them(
        glow, practice, tmp_path):
    """The manager imports only the valid rows; the skipped members are in the spreadsheet and not in
    the ledger, but every reconciliation said nothing of them (the sheet view holds imported rows
    only), so they were forgotten."""
    path = tmp_path / "members.csv"
    sheet = ("Name,Email,Plan,Member Since\r\n"
             "Renée Dubois,renee@example.com,Glow,1/3/2024\r\n"
             "Cy Park,cy@example.com,Platinum,1/3/2024\r\n")
    path.write_bytes(sheet.encode())
    call_command("import_members", str(path), "--only-valid", stdout=io.StringIO())
    assert Member.objects.count() == 1
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    found = [(d.member_number, d.kind, d.message) for d in Discrepancy.objects.filter(last_seen_run=run)]
    imported_on = f"{ImportBatch.objects.latest('pk').finished_at:%Y-%m-%d}"
    assert found == [("", "missing", f"Line 3 of members.csv (imported {imported_on}) was skipped, so it is in the "
                                     f"spreadsheet but not in the ledger: Plan: unknown tier 'Platinum' (tiers: Glow)")]

    path.write_bytes(sheet.replace("Platinum", "Glow").encode())
    call_command("import_members", str(path), stdout=io.StringIO())
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    assert run.total == 0
    assert not Discrepancy.objects.filter(gone_at__isnull=True).exists()


def test_a_skipped_row_whose_error_names_another_member_does_not_name_them_on_the_reconciliation_page(
        glow, practice, tmp_path):
    MemberFactory(practice=practice, member_number="M000007", first_name="Zelda", last_name="Quixotic",
                  email="zelda@example.com")
    path = tmp_path / "members.csv"
    path.write_bytes(("Name,Email,Plan,Member Since\r\n"
                      "Renée Dubois,renee@example.com,Glow,1/3/2024\r\n"
                      "Yara Quill,zelda@example.com,Glow,1/3/2024\r\n").encode())
    call_command("import_members", str(path), "--only-valid", stdout=io.StringIO())
    run = run_reconciliation(practice=practice, now=NOW, sources={})
    [skipped] = Discrepancy.objects.filter(last_seen_run=run, member_number="")
    assert "Zelda" not in skipped.message and "Quixotic" not in skipped.message
    assert skipped.message.endswith("Name: it names another member; see the import's report")
