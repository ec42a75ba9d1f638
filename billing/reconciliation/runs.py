"""Running reconciliation for a practice and keeping its discrepancies across runs."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from django.db import transaction

from billing.models import Discrepancy, ReconciliationRun
from memberships.models import Practice, Service, ServiceKind
from memberships.services import Actor
from memberships.services.common import write_audit
from memberships.errors import ReasonRequired

from .compare import reconcile
from .snapshots import Source, ledger_rows, read_side, sheet_rows, skipped_rows

logger = logging.getLogger(__name__)


def run_reconciliation(*, practice: Practice, now: datetime, trigger: str = "command",
                       sources: dict[str, Source] | None = None) -> ReconciliationRun:
    """Read every side (the processor and the record through their APIs, never writing to them),
    compare, and record the run. A discrepancy found before keeps its row (and its resolution, as
    long as its values are the same); one no longer found is marked gone."""
    ledger = ledger_rows(practice_id=practice.pk)
    sheet = sheet_rows(practice_id=practice.pk)
    notes = [] if sheet is not None else ["sheet: nothing imported yet"]
    processor, note = read_side("processor", practice=practice, ledger=ledger, sources=sources)
    notes += [note] if note else []
    record, note = read_side("record", practice=practice, ledger=ledger, sources=sources)
    notes += [note] if note else []
    services = {code: (name, kind == ServiceKind.CREDIT)
                for code, name, kind in Service.objects.filter(practice=practice).values_list("code", "name", "kind")}
    found = reconcile(ledger, sheet, processor, record, services=services,
                      skipped=skipped_rows(practice_id=practice.pk) if sheet is not None else ())
    compared = ["ledger"] + [side for side, rows in (("sheet", sheet), ("processor", processor), ("record", record))
                             if rows is not None]
    with transaction.atomic():
        Practice.objects.select_for_update().get(pk=practice.pk)   # one run per practice at a time
        run = ReconciliationRun.objects.create(practice=practice, trigger=trigger, sources=compared, notes=notes,
                                               members_compared=len(ledger), total=len(found),
                                               counts=dict(Counter(d.kind for d in found)), started_at=now)
        by_fp = {d.fingerprint: d for d in found}
        existing = set(Discrepancy.objects.filter(practice=practice, fingerprint__in=list(by_fp))
                       .values_list("fingerprint", flat=True))
        Discrepancy.objects.filter(practice=practice, fingerprint__in=list(existing)).update(
            last_seen_run=run, last_seen_at=now, gone_at=None)
        Discrepancy.objects.bulk_create([
            Discrepancy(practice=practice, fingerprint=fp, member_id=d.member_id, member_number=d.member_number,
                        kind=d.kind, message=d.message[:300], values={"sides": d.sides, **d.values},
                        first_seen_run=run, last_seen_run=run, first_seen_at=now, last_seen_at=now)
            for fp, d in by_fp.items() if fp not in existing
        ], batch_size=2000)
        Discrepancy.objects.filter(practice=practice, gone_at__isnull=True).exclude(last_seen_run=run).update(gone_at=now)
        run.finished_at = now
        run.save(update_fields=["finished_at"])
    logger.info("reconciliation run %s for practice %s: %s discrepancies", run.pk, practice.pk, run.total)
    return run


def resolve_discrepancy(*, discrepancy: Discrepancy, actor: Actor, note: str, now: datetime) -> Discrepancy:
    """A manager marks a discrepancy resolved, saying what was done. Audited (the actor carries the
    request's address)."""
    note = (note or "").strip()
    if not note:
        raise ReasonRequired("Say how it was resolved.")
    with transaction.atomic():
        locked = Discrepancy.objects.select_for_update().get(pk=discrepancy.pk)
        locked.resolved_at, locked.resolved_by, locked.resolution_note = now, actor.user, note[:500]
        locked.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
        write_audit(actor=actor, action="discrepancy_resolved", obj=locked, member_id=locked.member_id, now=now,
                    detail={"kind": locked.kind})
    return locked
