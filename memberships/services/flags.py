"""Chart flags: a banner on the member's chart that another part of the system raises and clears
(a dunning case: "Card declined — update card before treatment"). Each change is an Event, so the
record adapters can mirror it on the external chart."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from memberships.models import ChartFlag, ChartFlagStatus, Event, EventKind, Member, Membership

from .common import Actor, record_event, record_events


def flagged_event(flag: ChartFlag, *, reason: str, actor: Actor, now: datetime) -> Event:
    """The FLAGGED timeline event of a flag just raised (unsaved), whichever path raised it (one
    flag here, a sweep's many in `billing.dunning.opening`)."""
    event = Event(practice_id=flag.practice_id, member=flag.member, membership=flag.membership, kind=EventKind.FLAGGED,
                  summary=f"Chart flagged: {flag.text}"[:300],
                  payload={"flag_id": flag.pk, "source": flag.source, "source_ref": flag.source_ref, "text": flag.text,
                           "reason": (reason or flag.source)[:40]},
                  actor_type=actor.type, actor_user_id=actor.user_id, created_at=now)
    if Member._meta.get_field("practice").is_cached(flag.member):
        event.practice = flag.member.practice  # the outbox fan-out reads it: spare it a query
    return event


def set_chart_flag(*, member: Member, membership: Membership | None = None, source: str, source_ref: str,
                   text: str, actor: Actor, now: datetime, reason: str = "") -> ChartFlag:
    """Raise the flag of `source_ref` (at most one open per source_ref; a replay returns it).
    `reason` is a short code for the record adapters (e.g. "card_declined")."""
    existing = ChartFlag.objects.filter(source_ref=source_ref, status=ChartFlagStatus.OPEN).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            flag = ChartFlag.objects.create(
                practice_id=member.practice_id, member=member, membership=membership, source=source,
                source_ref=source_ref, text=text[:200], opened_at=now,
            )
            record_events([flagged_event(flag, reason=reason, actor=actor, now=now)])
            return flag
    except IntegrityError:
        return ChartFlag.objects.get(source_ref=source_ref, status=ChartFlagStatus.OPEN)


def clear_chart_flag(*, source_ref: str, actor: Actor, now: datetime, reason: str = "") -> ChartFlag | None:
    """Clear the open flag of `source_ref`; None when there is none (already cleared: a no-op)."""
    with transaction.atomic():
        flag = (ChartFlag.objects.select_for_update()
                .filter(source_ref=source_ref, status=ChartFlagStatus.OPEN).select_related("member").first())
        if flag is None:
            return None
        flag.status = ChartFlagStatus.CLEARED
        flag.cleared_at = now
        flag.cleared_reason = reason[:200]
        flag.save(update_fields=["status", "cleared_at", "cleared_reason"])
        record_event(member=flag.member, membership=flag.membership, kind=EventKind.FLAG_CLEARED,
                     summary=f"Chart flag cleared: {flag.text}" + (f" ({reason[:80]})" if reason else ""),
                     payload={"flag_id": flag.pk, "source": flag.source, "source_ref": source_ref, "text": flag.text},
                     actor=actor, now=now)
        return flag
