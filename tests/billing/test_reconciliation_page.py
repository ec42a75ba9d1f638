"""The manager's reconciliation page: the list, links to the chart, resolve with a note, CSV."""

from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from billing.reconciliation.runs import run_reconciliation
from billing.models import Discrepancy
from memberships.models import AuditLog

from .test_import import GOOD_CSV, run

NOW = timezone.make_aware(datetime(2026, 11, 20, 12, 0))


def seeded(practice):
    run(practice, GOOD_CSV.encode())
    run(practice, GOOD_CSV.replace("Glow,2024-03-05,$199.00", "Glow,2024-03-05,$179.00").encode())
    return run_reconciliation(practice=practice, now=NOW, trigger="test")


def test_page_lists_discrepancies_with_chart_links_and_resolves(client, manager, glow, practice):
    result = seeded(practice)
    assert result.counts == {"price_mismatch": 1}        # processor and record not readable in tests: noted
    client.force_login(manager)
    page = client.get(reverse("mirror:reconciliation")).content.decode()
    d = Discrepancy.objects.get()
    assert "Price is $179.00 in the spreadsheet, $199.00 for the ledger&#x27;s tier" in page
    assert reverse("memberships:chart", args=[d.member_id]) in page
    assert "Not compared — processor: could not be read" in page
    empty = client.post(reverse("mirror:discrepancy_resolve", args=[d.pk]), {"note": " "}, follow=True)
    assert "Say how it was resolved." in empty.content.decode()
    done = client.post(reverse("mirror:discrepancy_resolve", args=[d.pk]), {"note": "Sheet had a promo rate"},
                       follow=True)
    assert "Marked resolved" in done.content.decode()
    assert "1 discrepancy." not in client.get(reverse("mirror:reconciliation")).content.decode()
    assert "Sheet had a promo rate" in client.get(reverse("mirror:reconciliation") + "?show=resolved").content.decode()
    assert AuditLog.objects.filter(action="discrepancy_resolved", user=manager).exists()


def test_csv_export(client, manager, glow, practice):
    seeded(practice)
    client.force_login(manager)
    response = client.get(reverse("mirror:reconciliation_csv"))
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("member_number,member_id,kind,sides,message")
    assert lines[1].startswith("M001,") and "price_mismatch" in lines[1]


def test_csv_export_neutralises_spreadsheet_formulas(client, manager, glow, practice):
    """Member numbers and notes from an imported sheet that a spreadsheet would run as formulas
    (= + - @, tab, CR at the start) come out as text, prefixed with a single quote (OWASP)."""
    import csv
    import io

    hostile = {"M001": "=HYPERLINK(\"\"x\"\",\"\"y\"\")", "M002": "+1+2", "M003": "-2+3",
               "M004": "@SUM(A1)"}
    sheet = GOOD_CSV
    for number, value in hostile.items():
        sheet = sheet.replace(f"{number},", f'"{value}",', 1)
    run(practice, sheet.encode())
    cheaper = sheet.replace(",$199.00,1,$50.00", ",$179.00,1,$50.00").replace(",199,2,50", ",179,2,50") \
        .replace(",199.00,0,12.5", ",179.00,0,12.5")
    run(practice, cheaper.encode())
    run_reconciliation(practice=practice, now=NOW, trigger="test")
    d = Discrepancy.objects.filter(member_number="+1+2").get()
    d.resolution_note = "\tcmd|' /C calc'!A0"
    d.save(update_fields=["resolution_note"])
    client.force_login(manager)
    rows = list(csv.reader(io.StringIO(client.get(reverse("mirror:reconciliation_csv")).content.decode())))
    numbers = {row[0] for row in rows[1:]}
    assert numbers == {"'=HYPERLINK(\"x\",\"y\")", "'+1+2", "'-2+3"}
    assert [row[10] for row in rows[1:] if row[0] == "'+1+2"] == ["'\tcmd|' /C calc'!A0"]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


def test_front_desk_cannot_see_it(client, front_desk, glow):
    client.force_login(front_desk)
    assert client.get(reverse("mirror:reconciliation")).status_code == 403
    assert client.get(reverse("mirror:reconciliation_csv")).status_code == 403


def test_nightly_schedule_exists_without_catch_up(db):
    from django.conf import settings
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="reconciliation: nightly")
    assert schedule.func == "billing.tasks.reconcile_nightly" and schedule.schedule_type == Schedule.DAILY
    assert settings.Q_CLUSTER["catch_up"] is False
