"""Importing a practice's membership spreadsheet: messy real-world files, all-or-nothing, re-import."""

import io
from datetime import date, datetime

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from billing.models import ImportStatus, SheetRow
from billing.sheets.batches import create_import_batch, run_import_batch
from billing.sheets.checking import check_import
from billing.sheets.values import parse_cents, parse_date
from memberships.models import (
    EntitlementBalance,
    EntryKind,
    Event,
    EventKind,
    LedgerEntry,
    Member,
    Membership,
    MembershipStatus,
)
from tests.factories import TierFactory

NOW = timezone.make_aware(datetime(2026, 11, 20, 12, 0))

GOOD_CSV = (
    "\ufeffMember #, First Name ,Last Name,Email,Mobile,Membership,Member since,Monthly price,"
    "HydraFacial balance,Product credit ($),Stripe customer,Stripe subscription,Patient ID,SMS opt-in,Status,"
    "Paused until\n"
    "M001,  Ana ,Silva,ana@example.com,(415) 555-0101,Glow,2024-03-05,$199.00,1,$50.00,cus_A,sub_A,P-1,yes,active,\n"
    "M002,Ben,Okafor,BEN@example.com,415.555.0102,glow,03/15/2025,199,2,50,cus_B,sub_B,P-2,no,Active,\n"
    ",,,,,,,,,,,,,,,\n"
    "M003,Cleo,Park,,+1 415 555 0103,Glow,45292,199.00,0,12.5,cus_C,sub_C,P-3,Y,paused,2027-01-15\n"
    "M004,Dev,Shah,dev@example.com,,Glow,\"Jan 7, 2025\",199,1,0,cus_D,sub_D,P-4,,cancelled,\n"
)


def run(practice, content, name="members.csv", dry_run=False, only_valid=False):
    batch = create_import_batch(practice=practice, file_name=name, content=content, dry_run=dry_run,
                                only_valid_rows=only_valid, now=NOW)
    return run_import_batch(batch_id=batch.pk, now=NOW)


def balances(member_number):
    membership = Membership.objects.get(member__member_number=member_number)
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


def test_messy_csv_imports_members_memberships_and_opening_balances(glow, practice):
    batch = run(practice, GOOD_CSV.encode())
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert (batch.total_rows, batch.created_count, batch.rejected_count) == (4, 4, 0)
    ana = Member.objects.get(member_number="M001")
    assert (ana.first_name, ana.phone, ana.sms_consent, ana.processor_customer_id) == ("Ana", "+14155550101", True, "cus_A")
    assert Member.objects.get(member_number="M002").email == "ben@example.com"
    assert balances("M001") == {"hydrafacial": 1, "product-credit": 5000}
    assert balances("M003") == {"hydrafacial": 0, "product-credit": 1250}
    m1 = Membership.objects.get(member=ana)
    assert m1.status == MembershipStatus.ACTIVE and m1.processor_subscription_id == "sub_A"
    assert m1.current_period_start.date() == date(2026, 11, 5) and m1.current_period_end.date() == date(2026, 12, 5)
    assert Membership.objects.get(member__member_number="M003").status == MembershipStatus.PAUSED
    cancelled = Membership.objects.get(member__member_number="M004")
    assert cancelled.status == MembershipStatus.CANCELLED
    assert balances("M004")["hydrafacial"] == 1  # frozen, not deleted
    openings = LedgerEntry.objects.filter(kind=EntryKind.OPENING)
    assert openings.count() == 6 and set(openings.values_list("source", flat=True)) == {"import"}
    assert set(openings.values_list("actor_type", flat=True)) == {"import"}
    assert Event.objects.filter(kind=EventKind.IMPORTED, member=ana).exists()
    sheet = SheetRow.objects.get(member_number="M003")
    assert (sheet.status, sheet.tier_code, sheet.price_cents) == ("paused", "glow", 19900)
    assert sheet.balances == {"product-credit": 1250}


def test_reimporting_the_same_file_changes_nothing(glow, practice):
    run(practice, GOOD_CSV.encode())
    counts = (Member.objects.count(), LedgerEntry.objects.count(), Event.objects.count())
    again = run(practice, GOOD_CSV.encode())
    assert again.status == ImportStatus.IMPORTED
    assert (again.created_count, again.changed_count, again.unchanged_count) == (0, 0, 4)
    assert (Member.objects.count(), LedgerEntry.objects.count(), Event.objects.count()) == counts


def test_a_changed_row_updates_contact_and_sheet_view_but_not_the_ledger(glow, practice):
    run(practice, GOOD_CSV.encode())
    entries = LedgerEntry.objects.count()
    changed = GOOD_CSV.replace("ana@example.com", "ana.silva@example.com").replace(",1,$50.00,", ",3,$50.00,")
    batch = run(practice, changed.encode())
    assert (batch.created_count, batch.changed_count, batch.unchanged_count) == (0, 1, 3)
    assert Member.objects.get(member_number="M001").email == "ana.silva@example.com"
    assert SheetRow.objects.get(member_number="M001").balances["hydrafacial"] == 3
    assert balances("M001")["hydrafacial"] == 1 and LedgerEntry.objects.count() == entries


def messy_xlsx(tier_names=("Glow",)):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Member ID", "Given name", "Surname", "E-mail", "Phone", "Plan", "Start date", "Price",
               "HydraFacial remaining", "Product credit balance"])
    ws.append(["X1", " Eve ", "Ng", "eve@example.com", "4155550111", "Glow", datetime(2025, 2, 1), 199, 1, "$50.00"])  # 2
    ws.append(["X2", "Fay", "Li", "fay@example", "4155550112", "Glow", 45700, "199", 1, 50])                          # 3
    ws.append([None, None, None, None, None, None, None, None, None, None])                                          # 4
    ws.append(["X3", "Gus", "Oh", "gus@example.com", "12", "Glow", "2025-13-45", 199, 1, 50])                         # 5
    ws.append(["X4", "Hal", "Ra", "hal@example.com", "4155550114", "Platinum", "2025-01-01", 199, 1, 50])             # 6
    ws.append(["X1", "Eve", "Ng", "eve@example.com", "4155550111", "Glow", "2025-02-01", 199, 1, 50])                 # 7
    ws.append(["X5", "Ivy", "Su", "ivy@example.com", "4155550115", "Glow", "2025-01-01", 199, -1, "50"])              # 8
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_bad_rows_are_each_named_and_nothing_is_written(glow, practice):
    batch = run(practice, messy_xlsx(), name="members.xlsx")
    assert batch.status == ImportStatus.REJECTED
    problems = {(e["line"], e["column"]) : e["message"] for e in batch.errors}
    assert "not an email" in problems[(3, "E-mail")]
    assert "not a valid phone" in problems[(5, "Phone")]
    assert "not a date" in problems[(5, "Start date")]
    assert "unknown tier 'Platinum'" in problems[(6, "Plan")]
    assert "duplicate member" in problems[(7, "Member ID")] and "line 2" in problems[(7, "Member ID")]
    assert "negative" in problems[(8, "HydraFacial remaining")]
    assert batch.rejected_count == 5 and batch.total_rows == 6
    assert Member.objects.count() == 0 and LedgerEntry.objects.count() == 0 and SheetRow.objects.count() == 0


def test_a_processor_id_of_another_member_is_a_row_error(glow, practice):
    """A subscription or customer id that another member (here, in the ledger or of another
    practice, or on an earlier line) already has is refused on that row; re-importing a member's
    own ids is fine."""
    from tests.factories import MemberFactory, PracticeFactory

    assert run(practice, GOOD_CSV.encode()).status == ImportStatus.IMPORTED
    other_practice = PracticeFactory()
    MemberFactory(practice=other_practice, processor_customer_id="cus_elsewhere")
    header = GOOD_CSV.splitlines()[0]
    rows = [
        "M001,Ana,Silva,ana@example.com,(415) 555-0101,Glow,2024-03-05,$199.00,1,$50.00,cus_A,sub_A,P-1,yes,active",
        "M010,Eve,Ng,eve@example.com,,Glow,2025-01-01,199,1,0,cus_E,sub_A,P-10,,active",
        "M011,Fay,Lo,fay@example.com,,Glow,2025-01-01,199,1,0,cus_B,sub_F,P-11,,active",
        "M012,Gus,Ro,gus@example.com,,Glow,2025-01-01,199,1,0,cus_elsewhere,sub_G,P-12,,active",
        "M013,Hal,Po,hal@example.com,,Glow,2025-01-01,199,1,0,cus_H,sub_H,P-13,,active",
        "M014,Ida,Qu,ida@example.com,,Glow,2025-01-01,199,1,0,cus_I,sub_H,P-14,,active",
        "M002,Ben,Okafor,ben@example.com,415.555.0102,Glow,03/15/2025,199,2,50,cus_C,sub_B,P-2,no,Active",
    ]
    batch = run(practice, "\n".join([header, *rows]).encode())
    assert batch.status == ImportStatus.REJECTED
    problems = {(e["line"], e["column"]): e["message"] for e in batch.errors}
    assert problems == {
        (3, "Stripe subscription"): "processor subscription id sub_A already belongs to another member",
        (4, "Stripe customer"): "processor customer id cus_B already belongs to another member",
        (5, "Stripe customer"): "processor customer id cus_elsewhere already belongs to another member",
        (7, "Stripe subscription"): "processor subscription id sub_H is already on line 6",
        (8, "Stripe customer"): "processor customer id cus_C already belongs to another member",
    }
    assert not Member.objects.filter(member_number__in=["M010", "M011", "M012", "M013", "M014"]).exists()
    assert Member.objects.get(member_number="M002").processor_customer_id == "cus_B"


def test_two_memberships_cannot_share_a_processor_subscription(glow, practice):
    from django.db import IntegrityError, transaction

    from tests.factories import MemberFactory, active_membership

    tier = glow[0]
    first = active_membership(tier=tier, member=MemberFactory(practice=practice), now=NOW)
    second = active_membership(tier=tier, member=MemberFactory(practice=practice), now=NOW)
    Membership.objects.filter(pk=first.pk).update(processor_subscription_id="sub_same")
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.filter(pk=second.pk).update(processor_subscription_id="sub_same")
    Membership.objects.filter(pk=second.pk).update(processor_subscription_id="")  # many without one: fine
    Membership.objects.filter(pk=first.pk).update(processor_subscription_id="")


def test_importing_only_the_valid_rows_is_a_stated_choice(glow, practice):
    batch = run(practice, messy_xlsx(), name="members.xlsx", only_valid=True)
    assert batch.status == ImportStatus.IMPORTED
    assert batch.report["skipped_rows"] == [3, 5, 6, 7, 8]
    assert set(Member.objects.values_list("member_number", flat=True)) == {"X1"}
    assert balances("X1") == {"hydrafacial": 1, "product-credit": 5000}


def test_dry_run_shows_the_plan_and_writes_nothing(glow, practice):
    batch = run(practice, GOOD_CSV.encode(), dry_run=True)
    assert batch.status == ImportStatus.VALIDATED and batch.created_count == 4
    lines = {a["line"]: a for a in batch.report["actions"]}
    assert lines[2]["action"] == "create" and "opening balance 1 HydraFacial, $50.00 Product credit" in lines[2]["detail"]
    assert batch.report["mapping"]["HydraFacial balance"] == "balance:hydrafacial"
    assert batch.report["mapping"]["Product credit ($)"] == "balance:product-credit"
    assert batch.report["mapping"]["First Name"] == "first_name"
    assert batch.report["mapping"]["Member #"] == "member_number"
    assert Member.objects.count() == 0


def test_missing_required_column_rejects_the_file(glow, practice):
    batch = run(practice, b"First name,Last name,Tier\nA,B,Glow\n")
    assert batch.status == ImportStatus.REJECTED
    assert any("member number" in e["message"] for e in batch.errors)
    assert Member.objects.count() == 0


def test_newest_tier_version_is_used(glow, practice):
    tier, *_ = glow
    v2 = TierFactory(practice=practice, code="glow", version=2, name="Glow", price_cents=21900)
    check = check_import(practice=practice, content=GOOD_CSV.encode(), file_name="m.csv", now=NOW)
    assert not check.errors and {p.row.tier_code for p in check.planned} == {"glow"}
    run(practice, GOOD_CSV.encode())
    assert Membership.objects.get(member__member_number="M001").tier == v2


@pytest.mark.parametrize("raw,expected", [
    ("2024-03-05", date(2024, 3, 5)), ("03/05/2024", date(2024, 3, 5)), ("03/05/24", date(2024, 3, 5)),
    (45292, date(2024, 1, 1)), ("45292", date(2024, 1, 1)), ("Mar 5, 2024", date(2024, 3, 5)),
    (datetime(2024, 3, 5, 0, 0), date(2024, 3, 5)), ("5.3.2024", date(2024, 3, 5)),
])
def test_dates(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw,expected", [
    ("25/03/2024", date(2024, 3, 25)), ("03/05/2024", date(2024, 5, 3)), ("2024-03-05", date(2024, 3, 5)),
    (45292, date(2024, 1, 1)),
])
def test_day_first_dates_when_the_column_is_day_month(raw, expected):
    assert parse_date(raw, order="dmy") == expected


@pytest.mark.parametrize("raw,expected", [("$50.00", 5000), ("50", 5000), ("1,234.5", 123450), (50.0, 5000),
                                          (" $ 12.50 ", 1250), ("", None)])
def test_amounts(raw, expected):
    assert parse_cents(raw) == expected


def test_command_prints_progress_and_rejects_bad_files(glow, practice, tmp_path):
    good = tmp_path / "members.csv"
    good.write_text(GOOD_CSV, encoding="utf-8")
    out = io.StringIO()
    call_command("import_members", str(good), stdout=out)
    text = out.getvalue()
    assert "Checked 4/4 rows (100%)" in text and "Imported 4/4 rows" in text
    assert Member.objects.count() == 4
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(messy_xlsx())
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_members", str(bad), stdout=out)
    assert "line 6, column 'Plan': unknown tier 'Platinum'" in out.getvalue()
    assert Member.objects.count() == 4


def test_imported_ledger_keeps_its_invariants(glow, practice):
    from django.db.models import Sum

    from memberships.models import CreditLot

    run(practice, GOOD_CSV.encode())
    for balance in EntitlementBalance.objects.all():
        entries = LedgerEntry.objects.filter(membership=balance.membership, service=balance.service)
        lots = CreditLot.objects.filter(membership=balance.membership, service=balance.service)
        assert balance.balance == (entries.aggregate(s=Sum("quantity"))["s"] or 0)
        assert balance.balance == (lots.aggregate(s=Sum("remaining"))["s"] or 0)


def test_activate_imported_membership_moves_pending_to_the_stated_status(glow, practice):
    from memberships import services
    from tests.factories import MemberFactory

    tier, *_ = glow
    member = MemberFactory(practice=practice)
    pending = services.enroll_member(member=member, tier=tier, actor=services.Actor.importer(),
                                     idempotency_key="e1", now=NOW)
    kwargs = dict(membership=pending, status=MembershipStatus.PAST_DUE, current_period_start=NOW,
                  current_period_end=NOW, processor_subscription_id="sub_X", actor=services.Actor.importer(),
                  idempotency_key="a1", now=NOW)
    done = services.activate_imported_membership(**kwargs)
    again = services.activate_imported_membership(**kwargs)
    assert done.status == again.status == MembershipStatus.PAST_DUE and done.processor_subscription_id == "sub_X"
    assert Event.objects.filter(membership=done, kind=EventKind.IMPORTED).count() == 1


def test_values_longer_than_the_ledger_keeps_are_row_errors_not_a_failed_batch(glow, practice):
    header = GOOD_CSV.splitlines()[0]
    rows = [
        "M-0000000000000000000042,Ana,Silva,ana@example.com,,Glow,2024-03-05,199,1,0,cus_A,sub_A,P-1,yes,active,",
        f"M002,{'B' * 101},Okafor,ben@example.com,,Glow,2025-03-15,199,1,0,cus_B,sub_B,P-2,no,active,",
        f"M003,Cleo,Park,,,Glow,2025-03-15,199,1,0,cus_C,{'s' * 101},P-3,no,active,",
    ]
    batch = run(practice, "\n".join([header, *rows]).encode())
    assert batch.status == ImportStatus.REJECTED
    problems = {(e["line"], e["column"]): e["message"] for e in batch.errors}
    assert problems[(2, "Member #")] == "is longer than 20 characters"
    assert problems[(3, "First Name")] == "is longer than 100 characters"
    assert problems[(4, "Stripe subscription")] == "is longer than 100 characters"
    assert not Member.objects.filter(practice=practice).exists()


def test_an_import_that_fails_unexpectedly_logs_ids_not_the_members_details(glow, practice, monkeypatch, caplog):
    """A database error quotes the row it refused (PostgreSQL: 'Key (email)=(ana@example.com) already
    exists'): the log names the batch and the error's type, never the message."""
    from django.db import IntegrityError

    from billing.sheets import batches

    def refuse(**kwargs):
        raise IntegrityError('duplicate key value violates unique constraint "member_email"\n'
                             "DETAIL:  Key (practice_id, email)=(1, ana@example.com) already exists.")

    monkeypatch.setattr(batches, "apply_import", refuse)
    with caplog.at_level("ERROR"):
        batch = run(practice, GOOD_CSV.encode())
    assert batch.status == ImportStatus.FAILED
    assert f"import batch {batch.pk} failed" in caplog.text and "IntegrityError" in caplog.text
    assert "ana@example.com" not in caplog.text
