"""On PostgreSQL, with real threads: two managers importing the same spreadsheet at the same moment
produce one set of members, memberships and opening balances, with or without member numbers."""

import threading

import pytest
from django.db.models import Count

from billing.models import ImportStatus, SheetRow
from billing.sheets import batches
from billing.sheets.batches import create_import_batch, run_import_batch
from memberships.models import EntryKind, LedgerEntry, Member, Membership
from tests.memberships.ledger_checks import hammer
from tests.support.waiting import PATIENCE

from .test_import import NOW

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROWS = 300


def sheet(with_numbers: bool) -> bytes:
    header = ("Member #," if with_numbers else "") + "Client Name,Email,Cell,Plan,Member since,HydraFacials left"
    lines = [header]
    for i in range(ROWS):
        contact = f"c{i}@example.com,(626) 555-{i:04d}" if i % 3 else f",(626) 555-{i:04d}"
        lines.append(("" if not with_numbers else f"S{i:04d},") + f"Client{i} Näme{i},{contact},Glow,"
                     f"{1 + i % 12}/{1 + i % 28}/2025,{i % 3}")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize("with_numbers", [False, True], ids=["no member numbers", "member numbers"])
def test_two_managers_importing_one_sheet_at_once_make_one_set_of_members(glow, practice, with_numbers, monkeypatch):
    """Both check the file before either writes (held at a barrier), so both plan to create every
    member; then both write at once."""
    both_checked = threading.Barrier(2)
    real_apply = batches.apply_import

    def apply_after_both_checked(**kwargs):
        both_checked.wait(timeout=PATIENCE)
        return real_apply(**kwargs)

    monkeypatch.setattr(batches, "apply_import", apply_after_both_checked)
    content = sheet(with_numbers)
    ids = [create_import_batch(practice=practice, file_name="members.csv", content=content, dry_run=False,
                               now=NOW).pk for _ in range(2)]
    results, errors = hammer(n=2, fn=lambda i: run_import_batch(batch_id=ids[i], now=NOW))
    assert not errors, errors
    assert [b.status for b in results] == [ImportStatus.IMPORTED] * 2, [b.errors[:3] for b in results]
    assert Member.objects.filter(practice=practice).count() == ROWS
    assert Membership.objects.count() == ROWS
    assert not Member.objects.values("email").exclude(email="").annotate(n=Count("id")).filter(n__gt=1).exists()
    openings = LedgerEntry.objects.filter(kind=EntryKind.OPENING)
    assert openings.count() == sum(1 for i in range(ROWS) if i % 3)
    assert SheetRow.objects.filter(practice=practice).count() == ROWS
    numbers = sorted(Member.objects.values_list("member_number", flat=True))
    expected = [f"S{i:04d}" for i in range(ROWS)] if with_numbers else [f"M{i:06d}" for i in range(1, ROWS + 1)]
    assert numbers == expected
    assert [b.created_count for b in results] == [ROWS, ROWS]     # both planned to create every member
