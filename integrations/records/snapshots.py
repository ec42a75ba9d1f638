"""Reading the record for reconciliation: what each member's chart says (tier, status, flags),
through the practice's record adapter. Read only."""

from __future__ import annotations

from billing.reconciliation.compare import LedgerRow, RecordRow
from billing.reconciliation.snapshots import SourceSkipped
from memberships.models import AutomationStage, Member, Membership, Practice

from . import get_adapter
from .selectors import _flag_for


def record_source(*, practice: Practice, ledger: list[LedgerRow]) -> list[RecordRow]:
    if (practice.record_adapter or "builtin") == "builtin":
        raise SourceSkipped("builtin record: the chart panel is the ledger itself")
    adapter = get_adapter(practice)
    compare_flags = practice.stage_at_least(AutomationStage.ALERTS)
    members = Member.objects.select_related("practice").in_bulk([row.member_id for row in ledger])
    memberships: dict[int, Membership] = {}
    for m in Membership.objects.filter(member_id__in=list(members)).order_by("id"):
        current = memberships.get(m.member_id)
        if current is None or current.status == "cancelled":   # the open one, else the latest
            memberships[m.member_id] = m
    rows = []
    for row in ledger:
        member = members[row.member_id]
        snapshot = adapter.read_patient_snapshot(member)
        if snapshot is None:
            rows.append(RecordRow(member_id=member.pk, tier=None, status=None, found=False))
            continue
        expected = None
        if compare_flags:
            flag = _flag_for(member, memberships.get(member.pk))
            expected = flag.reason if flag else ""
        rows.append(RecordRow(member_id=member.pk, tier=snapshot.get("tier"), status=snapshot.get("status"),
                              flags=tuple(snapshot.get("flags") or ()), flag_expected=expected))
    return rows
