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
    location_id: int | None = None      # the member's home location (whose stage held it back)


# Set by `integrations` (it knows its destinations' stages); billing never imports it.
_shadow_reader: Callable[..., list[ShadowEntry]] | None = None


def register_shadow_reader(reader: Callable[..., list[ShadowEntry]]) -> None:
    global _shadow_reader
    _shadow_reader = reader


def next_stage(stage: str) -> str | None:
    rank = STAGES.index(stage)
    return STAGES[rank + 1] if rank + 1 < len(STAGES) else None


def shadow_log(*, practice: Practice, now: datetime, days: int = 30) -> list[ShadowEntry]:
    """Shadowed deliveries of the last `days` days, and the card-update messages and payment retries
    dunning held back (they never reach the outbox), newest first, each with the stage it needs and
    the member's home location."""
    since = now - timedelta(days=days)
    entries = _shadow_reader(practice_id=practice.pk, since=since) if _shadow_reader is not None else []
    entries += _dunning_shadow(practice_id=practice.pk, since=since)
    return sorted(entries, key=lambda e: e.at, reverse=True)


def _dunning_shadow(*, practice_id: int, since: datetime, limit: int = 5000) -> list[ShadowEntry]:
    from billing.models import AttemptStatus, DunningAttempt, DunningMessage, MessageChannel, MessageStatus

    entries = []
    for at, channel, member_id, location_id in (
            DunningMessage.objects.filter(case__practice_id=practice_id, status=MessageStatus.SHADOWED,
                                          created_at__gte=since)
            .order_by("-created_at", "-id").values_list("created_at", "channel", "case__member_id",
                                                        "case__member__home_location_id")[:limit]):
        what = "SMS" if channel == MessageChannel.SMS else "email"
        entries.append(ShadowEntry(at=at, destination="member_message", stage=AutomationStage.DUNNING,
                                   note=f"would have: send the card-update {what} to member {member_id}",
                                   member_id=member_id, location_id=location_id))
    for at, number, ref, member_id, location_id in (
            DunningAttempt.objects.filter(case__practice_id=practice_id, status=AttemptStatus.SHADOWED,
                                          requested_at__gte=since)
            .order_by("-requested_at", "-id").values_list("requested_at", "number", "case__invoice_ref",
                                                          "case__member_id", "case__member__home_location_id")[:limit]):
        entries.append(ShadowEntry(at=at, destination="payment_retry", stage=AutomationStage.DUNNING,
                                   note=f"would have: retry the payment of invoice {ref} (retry {number})",
                                   member_id=member_id, location_id=location_id))
    return entries


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
