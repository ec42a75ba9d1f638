"""What an import must not guess: which column is a balance, which way a date is written, when a
pause ends, what an unsaved formula holds, and which separator a number uses. Each is refused with
a row- or file-level error the manager can act on, and nothing is written."""

import io
import re
import zipfile
from datetime import date, datetime, timedelta

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing import services as billing_services
from billing.facts import ChargeSucceeded
from billing.models import ImportStatus
from billing.sheets.checking import check_import
from billing.sheets.values import parse_cents, parse_units
from memberships import services
from memberships.errors import IllegalTransition
from memberships.models import (
    CreditLot,
    EntryKind,
    EventKind,
    LedgerEntry,
    Member,
    Membership,
    MembershipStatus,
)
from tests.factories import MemberFactory

from .test_import import NOW, balances, run


def csv(*lines):
    return ("\n".join(lines) + "\n").encode()


def problems(batch):
    return {(e["line"], e["column"]): e["message"] for e in batch.errors}


def file_problems(batch):
    return [e["message"] for e in batch.errors if e["line"] == 0]


def nothing_written():
    return Member.objects.count() == 0 and LedgerEntry.objects.count() == 0


# --- 1. which column is the balance -----------------------------------------------------------------

ALLOWANCE_CSV = csv(
    "Member #,Name,Plan,Start date,HydraFacials used,HydraFacial used this month,HydraFacial balance,"
    "Product credit per month,Product credit remaining",
    "M1,Ann Lee,Glow,2026-01-05,4,1,3,$50.00,$20.00",
)


def test_a_monthly_allowance_is_not_imported_as_a_balance_that_never_expires(glow, practice):
    batch = run(practice, ALLOWANCE_CSV)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert balances("M1") == {"hydrafacial": 3, "product-credit": 2000}
    lots = CreditLot.objects.filter(membership__member__member_number="M1")
    assert sorted(lots.values_list("service__code", "granted")) == [("hydrafacial", 3), ("product-credit", 2000)]
    mapping = batch.report["mapping"]
    assert mapping["HydraFacial balance"] == "balance:hydrafacial"
    assert mapping["Product credit remaining"] == "balance:product-credit"
    assert {"HydraFacial used this month", "Product credit per month", "HydraFacials used"} <= set(
        batch.report["ignored_columns"])
    notes = batch.report["column_notes"]
    assert "also says 'used this month'" in notes["HydraFacial used this month"]
    assert "'Product credit per month = balance:product-credit'" in notes["Product credit per month"]
    assert notes["HydraFacial balance"] == "opening balance of HydraFacial, in units"


@pytest.mark.parametrize("header", ["HydraFacial left", "HydraFacials remaining", "HydraFacial credits left",
                                    "Available HydraFacial", "hydrafacial (balance)"])
def test_balance_headers_that_are_only_the_service_and_balance_words_are_read(glow, practice, header):
    batch = run(practice, csv(f"Member #,Name,Plan,Start date,{header}", "M1,Ann Lee,Glow,2026-01-05,2"),
                dry_run=True)
    assert batch.report["mapping"][header] == "balance:hydrafacial"


def test_two_columns_that_look_like_one_balance_need_the_managers_word(glow, practice):
    content = csv("Member #,Name,Plan,Start date,HydraFacial balance,HydraFacial remaining",
                  "M1,Ann Lee,Glow,2026-01-05,5,2")
    batch = run(practice, content)
    assert batch.status == ImportStatus.REJECTED
    [message] = file_problems(batch)
    assert "'HydraFacial balance' and 'HydraFacial remaining' both look like the HydraFacial balance" in message
    assert "'HydraFacial balance = balance:hydrafacial'" in message
    assert nothing_written()
    override = {"HydraFacial remaining": "balance:hydrafacial", "HydraFacial balance": ""}
    from billing.sheets.batches import create_import_batch, run_import_batch
    batch = create_import_batch(practice=practice, file_name="m.csv", content=content, dry_run=False,
                                mapping_override=override, now=NOW)
    batch = run_import_batch(batch_id=batch.pk, now=NOW)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    assert balances("M1")["hydrafacial"] == 2


def test_a_column_with_other_words_is_read_as_a_balance_when_the_manager_says_so(glow, practice, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(ALLOWANCE_CSV)
    out = io.StringIO()
    call_command("import_members", str(path), "--map", "HydraFacial used this month=balance:hydrafacial",
                 "--map", "HydraFacial balance=", stdout=out)
    assert balances("M1")["hydrafacial"] == 1
    text = out.getvalue()
    assert "HydraFacial used this month → balance:hydrafacial: as mapped: opening balance of HydraFacial" in text
    assert "Product credit remaining → balance:product-credit: opening balance of Product credit, in dollars" in text
    assert "Product credit per month → ignored: names Product credit but also says 'per month'" in text


def test_the_command_dry_run_shows_how_each_column_is_read(glow, practice, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(ALLOWANCE_CSV)
    out = io.StringIO()
    call_command("import_members", str(path), "--dry-run", stdout=out)
    text = out.getvalue()
    assert "HydraFacial balance → balance:hydrafacial: opening balance of HydraFacial, in units" in text
    assert "HydraFacial used this month → ignored: names HydraFacial but also says 'used this month'" in text
    assert "Start date → start_date" in text
    assert Member.objects.count() == 0


# --- 2. dates: one order per column ---------------------------------------------------------------

def start_dates():
    return dict(Membership.objects.values_list("member__member_number", "started_at"))


def test_a_column_with_a_day_over_12_is_read_day_month_throughout(glow, practice):
    batch = run(practice, csv("Member #,Name,Plan,Start date,Next billing date",
                              "M1,Ann Lee,Glow,03/04/2026,03/12/2026",
                              "M2,Bo Chan,Glow,13/04/2026,13/12/2026"))
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    ends = dict(Membership.objects.values_list("member__member_number", "current_period_end"))
    local = {number: end.astimezone(practice.zone).date() for number, end in ends.items()}
    assert local == {"M1": date(2026, 12, 3), "M2": date(2026, 12, 13)}
    lines = {a["member_number"]: a["detail"] for a in run(practice, csv(
        "Member #,Name,Plan,Start date", "M3,Cy Do,Glow,03/04/2026", "M4,Di Ek,Glow,13/04/2026"), dry_run=True)
        .report["actions"]}
    assert "since 2026-04-03" in lines["M3"] and "since 2026-04-13" in lines["M4"]
    assert batch.report["column_notes"]["Start date"] == "dates read as day/month, as '13/04/2026' on line 3 shows"


def test_a_column_written_both_ways_rejects_the_rows_written_the_other_way(glow, practice):
    batch = run(practice, csv("Member #,Name,Plan,Start date",
                              "M1,Ann Lee,Glow,04/13/2026",
                              "M2,Bo Chan,Glow,05/14/2026",
                              "M3,Cy Do,Glow,13/04/2026",
                              "M4,Di Ek,Glow,03/04/2026"))
    assert batch.status == ImportStatus.REJECTED
    assert problems(batch) == {(4, "Start date"): "'13/04/2026' can only be day/month, but this column's dates are "
                                                  "month/day (e.g. '04/13/2026' on line 2): write it as 2026-04-13"}
    assert nothing_written()
    assert batch.report["column_notes"]["Start date"].endswith("1 written the other way are rejected")


def test_dates_that_could_be_either_way_follow_the_import_date_order_and_the_check_says_so(glow, practice,
                                                                                            tmp_path):
    content = csv("Member #,Name,Plan,Start date", "M1,Ann Lee,Glow,03/04/2026", "M2,Bo Chan,Glow,2026-05-06")
    month_first = run(practice, content, dry_run=True)
    assert "since 2026-03-04" in month_first.report["actions"][0]["detail"]
    assert month_first.report["column_notes"]["Start date"].startswith(
        "dates read as month/day, the import's date order: none of them shows the order")
    path = tmp_path / "members.csv"
    path.write_bytes(content)
    out = io.StringIO()
    call_command("import_members", str(path), "--dry-run", "--date-order", "dmy", stdout=out)
    text = out.getvalue()
    assert "line 2: create M1: Ann Lee; Glow, active; since 2026-04-03" in text
    assert "Start date → start_date: dates read as day/month, the import's date order" in text
    assert "since 2026-05-06" in text                      # ISO dates are read as they are


def test_excel_dates_and_iso_dates_are_not_affected_by_the_date_order(glow, practice):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Member #", "Name", "Plan", "Start date"])
    ws.append(["M1", "Ann Lee", "Glow", datetime(2026, 3, 4)])
    ws.append(["M2", "Bo Chan", "Glow", 46090])                 # an Excel serial date: 2026-03-09
    ws.append(["M3", "Cy Do", "Glow", "13/04/2026"])
    buf = io.BytesIO()
    wb.save(buf)
    batch = run(practice, buf.getvalue(), name="m.xlsx", dry_run=True)
    details = {a["member_number"]: a["detail"] for a in batch.report["actions"]}
    assert "since 2026-03-04" in details["M1"] and "since 2026-03-09" in details["M2"]
    assert "since 2026-04-13" in details["M3"]


# --- 3. a paused membership ends its pause ----------------------------------------------------------

PAUSED_HEADER = "Member #,Name,Plan,Status,Start date,Paused until,Stripe subscription"


def test_an_imported_pause_ends_on_its_date(glow, practice):
    batch = run(practice, csv(PAUSED_HEADER, "M1,Ann Lee,Glow,paused,01/15/2026,01/10/2027,sub_1",
                              "M2,Bo Chan,Glow,on hold,01/15/2026,2027-02-01,sub_2"))
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    ann = Membership.objects.get(member__member_number="M1")
    assert (ann.status, ann.paused_until) == (MembershipStatus.PAUSED, date(2027, 1, 10))
    assert ann.events.get(kind=EventKind.IMPORTED).summary.endswith("Glow, paused until Jan 10, 2027")
    assert services.resume_due_pauses(now=datetime(2027, 1, 9, 20, 0, tzinfo=practice.zone)) == 0
    assert services.resume_due_pauses(now=datetime(2027, 1, 10, 1, 0, tzinfo=practice.zone)) == 1
    ann.refresh_from_db()
    assert ann.status == MembershipStatus.ACTIVE
    # Nobody ran the hourly job for Bo: the first charge after the pause resumes and refills.
    bo = Membership.objects.get(member__member_number="M2")
    paid_at = datetime(2027, 2, 2, 18, 0, tzinfo=practice.zone)
    billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(processor="stripe", invoice_ref="in_after", subscription_ref="sub_2",
                               customer_ref="cus_2", membership_ref=f"ms_{bo.pk}", amount_cents=19900,
                               currency="usd", attempt_count=1, period_start=paid_at,
                               period_end=paid_at + timedelta(days=30), created=int(paid_at.timestamp()),
                               event_created=int(paid_at.timestamp()), amount_paid_cents=19900, paid_at=paid_at),
        now=paid_at)
    bo.refresh_from_db()
    assert bo.status == MembershipStatus.ACTIVE
    assert LedgerEntry.objects.filter(membership=bo, kind=EntryKind.GRANT, cycle_key="in_after").exists()


def test_a_paused_row_needs_a_pause_end_after_today(glow, practice):
    batch = run(practice, csv(PAUSED_HEADER,
                              "M1,Ann Lee,Glow,paused,2026-01-15,,sub_1",
                              "M2,Bo Chan,Glow,paused,2026-01-15,2026-11-20,sub_2",
                              "M3,Cy Do,Glow,active,2026-01-15,,sub_3",
                              "M4,Di Ek,Glow,paused,2026-01-15,someday,sub_4"))
    assert batch.status == ImportStatus.REJECTED
    assert problems(batch) == {
        (2, "Paused until"): "a paused membership needs the date its pause ends: fill in the 'Paused until' "
                             "column (or mark the member active)",
        (3, "Paused until"): "the pause ended on 2026-11-20: give a date after today, or mark the member active",
        (5, "Paused until"): "'someday' is not a date (use e.g. 2024-03-05 or 03/05/2024)",
    }
    assert nothing_written()


def test_a_paused_row_in_a_file_without_the_column_names_the_column(glow, practice):
    batch = run(practice, csv("Member #,Name,Plan,Status,Start date", "M1,Ann Lee,Glow,paused,2026-01-15"))
    assert "'Paused until' column" in problems(batch)[(2, "Paused until")]
    assert nothing_written()


def test_a_pause_already_in_the_ledger_does_not_block_importing_the_sheet_again(glow, practice):
    from billing.sheets.batches import create_import_batch, run_import_batch

    from .test_import import GOOD_CSV

    assert run(practice, GOOD_CSV.encode()).status == ImportStatus.IMPORTED
    later = NOW + timedelta(days=90)                     # Cleo's pause (to 2027-01-15) is over
    without_the_date = GOOD_CSV.replace(",paused,2027-01-15\n", ",paused,\n")
    for content in (GOOD_CSV, without_the_date):
        batch = create_import_batch(practice=practice, file_name="m.csv", content=content.encode(), dry_run=False,
                                    now=later)
        batch = run_import_batch(batch_id=batch.pk, now=later)
        assert batch.status == ImportStatus.IMPORTED, batch.errors
        assert batch.created_count == 0 and batch.rejected_count == 0


def test_the_ledger_refuses_an_imported_pause_without_an_end(glow, practice):
    tier = glow[0]
    item = services.ImportedMembership(member=MemberFactory(practice=practice), tier=tier,
                                       status=MembershipStatus.PAUSED, current_period_start=None,
                                       current_period_end=None, processor_subscription_id="", opening=(),
                                       key="import:test:1")
    with pytest.raises(IllegalTransition):
        services.import_memberships(items=[item], actor=services.Actor.importer(), now=NOW)
    assert Membership.objects.count() == 0


# --- 4. formulas without a saved value ------------------------------------------------------------

def formula_workbook(*, saved_value=None):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Member #", "Name", "Plan", "Start date", "HydraFacial balance", "Notes"])
    ws.append(["M1", "Ann Lee", "Glow", "2026-01-05", "=1+1", "=A2"])
    ws.append(["M2", "Bo Chan", "Glow", "2026-01-05", 1, "=A3"])            # a formula in an ignored column
    ws.append(["M3", "Cy Do", '=LOWER("GLOW")', "2026-01-05", 1, ""])
    buf = io.BytesIO()
    wb.save(buf)
    if saved_value is None:
        return buf.getvalue()
    # What Excel writes: the formula and its last result.
    source, out = zipfile.ZipFile(io.BytesIO(buf.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb"<f>1\+1</f><v\s*/?>(</v>)?", b"<f>1+1</f><v>%d</v>" % saved_value, data)
            target.writestr(item, data)
    return out.getvalue()


def test_a_formula_without_a_saved_value_is_an_error_not_a_zero(glow, practice):
    batch = run(practice, formula_workbook(), name="m.xlsx")
    assert batch.status == ImportStatus.REJECTED
    unsaved = "formula without a saved value: open and save the file in Excel, or paste values"
    assert problems(batch) == {(2, "HydraFacial balance"): unsaved, (4, "Plan"): unsaved}
    assert nothing_written()


def test_a_formula_with_its_saved_value_is_read(glow, practice):
    batch = run(practice, formula_workbook(saved_value=2), name="m.xlsx", only_valid=True)
    assert batch.status == ImportStatus.IMPORTED and batch.report["skipped_rows"] == [4]
    assert balances("M1")["hydrafacial"] == 2


# --- 5. separators ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,cents", [("$1,299.00", 129900), ("1299", 129900), ("50.00", 5000), ("$50", 5000),
                                       ("1,250", 125000), ("1234.500", 123450), (12.5, 1250)])
def test_amounts_as_us_spreadsheets_write_them(raw, cents):
    assert parse_cents(raw) == cents


@pytest.mark.parametrize("parse,raw,message", [
    (parse_cents, "1.250", "'1.250' in a dollar column is ambiguous (thousands or cents?): write 1250 or 1.25"),
    (parse_cents, "12,50", "'12,50' is ambiguous in a dollar column"),
    (parse_cents, "1.299,00", "'1.299,00' is ambiguous in a dollar column"),
    (parse_units, "1,5", "'1,5' is not a whole number of units"),
    (parse_units, "1.000", "'1.000' is ambiguous (thousands or a fraction?): write 1000 or 1"),
    (parse_units, "1.5", "'1.5' is not a whole number of units"),
])
def test_numbers_another_convention_would_read_differently_are_refused(parse, raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(raw)


def test_units_and_dollars_with_ambiguous_separators_reject_their_rows(glow, practice):
    batch = run(practice, csv("Member #,Name,Plan,Start date,HydraFacial balance,Product credit balance",
                              'M1,Ann Lee,Glow,2026-01-05,"1,5",$50.00',
                              "M2,Bo Chan,Glow,2026-01-05,1,1.250",
                              'M3,Cy Do,Glow,2026-01-05,2,"$1,299.00"'))
    assert batch.status == ImportStatus.REJECTED
    found = problems(batch)
    assert set(found) == {(2, "HydraFacial balance"), (3, "Product credit balance")}
    assert found[(2, "HydraFacial balance")].startswith("'1,5' is not a whole number of units")
    assert nothing_written()
    check = check_import(practice=practice, content=csv(
        "Member #,Name,Plan,Start date,HydraFacial balance,Product credit balance",
        'M3,Cy Do,Glow,2026-01-05,2,"$1,299.00"'), file_name="m.csv", now=NOW)
    assert not check.errors and check.planned[0].row.balances == {"hydrafacial": 2, "product-credit": 129900}


def test_a_file_with_errors_still_writes_nothing_when_run_from_the_command(glow, practice, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(csv("Member #,Name,Plan,Start date,HydraFacial balance", 'M1,Ann Lee,Glow,2026-01-05,"1,5"'))
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_members", str(path), stdout=out)
    assert "line 2, column 'HydraFacial balance': '1,5' is not a whole number of units" in out.getvalue()
    assert nothing_written()
