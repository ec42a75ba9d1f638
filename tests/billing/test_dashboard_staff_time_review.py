"""Staff hours saved counts a discrepancy as closed without staff only when the sides agree again: a
difference that is still there with other numbers (its values changed, so the run keeps it under a
new fingerprint) is the same work for the front desk, not a closed one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.metrics.payback import staff_time_saved
from billing.models import Discrepancy
from billing.reconciliation.runs import run_reconciliation
from billing.sheets.batches import create_import_batch, run_import_batch
from memberships import services
from memberships.models import Membership

from .test_dashboard_staff_time import SHEET

MINUTE = timedelta(minutes=1)
pytestmark = pytest.mark.django_db


def _closed(practice, now):
    return sum(m.reconciliation_closed for m in staff_time_saved(practice_id=practice.pk, now=now).months)


def test_a_difference_whose_numbers_change_is_not_closed_until_the_sides_agree(glow, practice):
    _, _, credit = glow
    now = timezone.now()
    batch = create_import_batch(practice=practice, file_name="members.csv", content=SHEET.encode(), dry_run=False,
                                now=now - 10 * MINUTE)
    run_import_batch(batch_id=batch.pk, now=now - 10 * MINUTE)
    s2 = Membership.objects.get(member__member_number="S2")
    spent = []
    for i, minutes in enumerate((9, 7)):                     # $10, then $10 more: the sheet still says $50
        spent.append(services.redeem_entitlement(membership=s2, service=credit, quantity=1000,
                                                 actor=services.Actor.system(), idempotency_key=f"spend-{i}",
                                                 now=now - minutes * MINUTE))
        run_reconciliation(practice=practice, now=now - (minutes - 1) * MINUTE, trigger="test")
    balance = Discrepancy.objects.filter(member__member_number="S2", kind="balance_mismatch")
    assert balance.count() == 2 and balance.filter(gone_at__isnull=True).count() == 1
    assert _closed(practice, now) == 0                        # still different: nothing closed by itself
    for i, entry in enumerate(spent):
        services.reverse_entry(entry=entry, actor=services.Actor.system(), reason="not used", now=now - 4 * MINUTE,
                               idempotency_key=f"undo-{i}")
    run_reconciliation(practice=practice, now=now - 3 * MINUTE, trigger="test")
    assert not balance.filter(gone_at__isnull=True).exists()
    assert _closed(practice, now) == 1                        # the sides agree again: one closed


def test_a_difference_whose_numbers_change_is_found_once(glow, practice):
    from billing.metrics.payback import payback_weeks

    _, _, credit = glow
    now = timezone.now()
    batch = create_import_batch(practice=practice, file_name="members.csv", content=SHEET.encode(), dry_run=False,
                                now=now - 10 * MINUTE)
    run_import_batch(batch_id=batch.pk, now=now - 10 * MINUTE)
    s2 = Membership.objects.get(member__member_number="S2")
    for i, minutes in enumerate((9, 7, 5)):                  # the same difference, with new numbers each run
        services.redeem_entitlement(membership=s2, service=credit, quantity=1000, actor=services.Actor.system(),
                                    idempotency_key=f"spend-{i}", now=now - minutes * MINUTE)
        run_reconciliation(practice=practice, now=now - (minutes - 1) * MINUTE, trigger="test")
    assert Discrepancy.objects.filter(member__member_number="S2", kind="balance_mismatch").count() == 3
    found = sum(week.discrepancies_found for week in payback_weeks(practice_id=practice.pk, now=now))
    assert found == Discrepancy.objects.exclude(member__member_number="S2", kind="balance_mismatch").count() + 1
