"""Reading the record for reconciliation: what each member's chart says (tier, status, flags),
through the record adapter of each member's home location where it runs its own record, else the
practice's; flags compared from the member's alerts stage on. Read only."""

from __future__ import annotations

from billing.reconciliation.compare import LedgerRow, RecordRow
from billing.reconciliation.snapshots import SourceSkipped
from memberships.models import AutomationStage, Member, Membership, Practice
from memberships.services.stages import stage_at_least_for

from . import get_adapter, member_record_location
from .selectors import _flag_for


def record_source(*, practice: Practice, ledger: list[LedgerRow]) -> list[RecordRow]:
    own_records = practice.locations.exclude(record_adapter="").exclude(record_adapter="builtin").exists()
    if (practice.record_adapter or "builtin") == "builtin" and not own_records:
        raise SourceSkipped("builtin record: the chart panel is the ledger itself")
    adapters: dict[int | None, object] = {}
    members = Member.objects.select_related("practice", "home_location").in_bulk([row.member_id for row in ledger])
    memberships: dict[int, Membership] = {}
    for m in Membership.objects.filter(member_id__in=list(members)).order_by("id"):
        current = memberships.get(m.member_id)
        if current is None or current.status == "cancelled":   # the open one, else the latest
            memberships[m.member_id] = m
    rows = []
    for row in ledger:
        member = members[row.member_id]
        location = member_record_location(member)       # each member's chart where it lives
        if location is None and (practice.record_adapter or "builtin") == "builtin":
            continue
        key = location.pk if location is not None else None
        adapter = adapters.get(key) or adapters.setdefault(key, get_adapter(practice, location))
        compare_flags = stage_at_least_for(member, AutomationStage.ALERTS)
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
