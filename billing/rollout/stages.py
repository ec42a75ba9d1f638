"""The staged rollout: which automation stage a practice is in, what each stage turns on, what the
shadow log says the next stage would have done, and moving between stages (audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from django.db import transaction

from memberships.errors import IllegalTransition
from memberships.models import AutomationStage, Practice
from memberships.services import Actor
from memberships.services.common import write_audit

STAGES = list(AutomationStage.values)
STAGE_EFFECTS: dict[str, list[str]] = {
    AutomationStage.OBSERVE: [
        "Read-only mirror: processor and record events are ingested and the ledger is computed.",
        "Nothing is written outside: every outgoing effect is recorded as shadowed (\"would have …\").",
        "Nightly reconciliation against the spreadsheet, the processor and the record.",
    ],
    AutomationStage.ALERTS: [
        "Chart flags in the record (card declined, paused, cancelled) and staff alerts.",
    ],
    AutomationStage.DUNNING: [
        "Member SMS and email with a card-update link after a failed payment.",
        "Payment retries on the dunning policy's schedule; its action on exhaustion.",
    ],
    AutomationStage.REDEMPTIONS: [
        "Treatments the record reports spend the member's balance automatically.",
    ],
    AutomationStage.TIER_SYNC: [
        "Enrollments, tier changes, pauses and cancellations reach the processor and the record.",
    ],
    AutomationStage.NOTICES: [
        "Members are told before it matters: an upcoming-charge notice before each renewal and a "
        "\"use it before it expires\" notice before unused benefits expire (email, and SMS with consent).",
    ],
}


@dataclass(frozen=True)
class ShadowEntry:
    at: datetime
    destination: str
    stage: str           # the stage that would let it through
    note: str            # "would have: …"
    member_id: int | None


# Set by `integrations` (it knows its destinations' stages); billing never imports it.
_shadow_reader: Callable[..., list[ShadowEntry]] | None = None


def register_shadow_reader(reader: Callable[..., list[ShadowEntry]]) -> None:
    global _shadow_reader
    _shadow_reader = reader


def next_stage(stage: str) -> str | None:
    rank = STAGES.index(stage)
    return STAGES[rank + 1] if rank + 1 < len(STAGES) else None


def shadow_log(*, practice: Practice, now: datetime, days: int = 30) -> list[ShadowEntry]:
    """Shadowed deliveries of the last `days` days, newest first, each with the stage it needs."""
    if _shadow_reader is None:
        return []
    return _shadow_reader(practice_id=practice.pk, since=now - timedelta(days=days))


def set_automation_stage(*, practice: Practice, stage: str, actor: Actor, now: datetime, note: str = "") -> Practice:
    """Move up one stage at a time (each step confirmed by the manager), or back to any earlier
    stage at any time. Every move is in the audit log (the actor carries the request's address)."""
    if stage not in STAGES:
        raise IllegalTransition(f"Unknown automation stage {stage!r}.")
    with transaction.atomic():
        locked = Practice.objects.select_for_update().get(pk=practice.pk)
        current = locked.automation_stage
        if stage == current:
            raise IllegalTransition("The practice is already at that stage.")
        if STAGES.index(stage) > STAGES.index(current) and stage != next_stage(current):
            raise IllegalTransition("Move up one stage at a time.")
        Practice.objects.filter(pk=locked.pk).update(automation_stage=stage)
        locked.automation_stage = stage
        write_audit(actor=actor, action="automation_stage_changed", obj=locked, now=now,
                    detail={"from": current, "to": stage, "note": note[:200]})
    return locked
