"""Which notices are due, and writing them once. The scheduled run (`plan_notices`) reads, for every
active membership whose member is at the `notices` automation stage (their home location's, else
the practice's: `memberships.services.stages`), the renewal (current period end) and the practice's
notice days; a notice is due from the boundary's date minus those days (in the member's zone) until
the boundary. For each batch it locks the memberships (SKIP LOCKED: a second run at the same moment
takes the others), drops what already has its notice, asks the dry run what the boundary would
expire (`preview_next_boundaries`: the member page's dry run, for the whole batch in three queries)
and writes the notices and their timeline events (through which the outbox sends them) in one
statement each; a notice withdrawn when it was to go (it did not apply then: `sending`) and due
again is planned again on its own row. The amount and what expires are written here for the record
and read again when each channel goes (`sending.settle_terms`). The unique constraint
(membership, kind, boundary date) backs it: a re-run, or two at once, sends nothing twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q

from memberships.models import AutomationStage, Event, EventKind, Membership, MembershipStatus, TierLocationPrice
from memberships.services import Actor, sql
from memberships.services.common import record_events
from memberships.services.refill import preview_next_boundaries
from memberships.services.stages import effective_stage_expression, stages_at_least

from ..dunning.quiet import member_zone
from ..models import ChannelStatus, MemberNotice, NoticeKind, NoticeSettings, NoticeStatus, ProcessorSubscription
from ..models.notices import DEFAULT_NOTICE_DAYS
from .wording import day, timeline_label

logger = logging.getLogger(__name__)

BATCH = 200
SYSTEM = Actor.system("notices")


@dataclass(frozen=True)
class Due:
    membership_id: int
    kind: str
    boundary_date: date


def notice_days() -> dict[int, tuple[int, int]]:
    """(upcoming-charge days, expiring-credit days) of each practice that set its own."""
    return {row.practice_id: (row.upcoming_charge_days, row.expiring_credit_days)
            for row in NoticeSettings.objects.all()}


def _open_memberships(*, now: datetime, horizon: datetime):
    return (Membership.objects.filter(status=MembershipStatus.ACTIVE, current_period_end__gt=now,
                                      current_period_end__lte=horizon)
            .annotate(notice_stage=effective_stage_expression("member__"))
            .filter(notice_stage__in=stages_at_least(AutomationStage.NOTICES)))


def dues_of(membership: Membership, *, days: dict[int, tuple[int, int]], now: datetime) -> list[Due]:
    """The notices this membership is due now (before knowing what was already sent)."""
    member = membership.member
    zone = member_zone(member)
    boundary = membership.current_period_end.astimezone(zone).date()
    today = now.astimezone(zone).date()
    upcoming, expiring = days.get(member.practice_id, (DEFAULT_NOTICE_DAYS, DEFAULT_NOTICE_DAYS))
    dues = []
    if today >= boundary - timedelta(days=upcoming):
        dues.append(Due(membership.pk, NoticeKind.UPCOMING_CHARGE, boundary))
    if today >= boundary - timedelta(days=expiring):
        dues.append(Due(membership.pk, NoticeKind.EXPIRING_CREDIT, boundary))
    return dues


def not_renewing(memberships: list[Membership]) -> set[int]:
    """The memberships the processor will not charge at the renewal although the ledger has them
    active: their subscription ends then (cancelled at the period end) or stops collecting (a pause
    the processor carries out). They get no "your membership renews on …" notice."""
    refs = {m.pk: m.processor_subscription_id for m in memberships if m.processor_subscription_id}
    if not refs:
        return set()
    rows = (ProcessorSubscription.objects.filter(membership_id__in=list(refs))
            .filter(Q(cancel_at_period_end=True) | Q(collection_paused=True))
            .values_list("membership_id", "processor_subscription_id"))
    return {membership_id for membership_id, ref in rows if refs.get(membership_id) == ref}


def _renewing(dues: list[Due], memberships: list[Membership]) -> list[Due]:
    ending = not_renewing(memberships)
    return [due for due in dues if not (due.kind == NoticeKind.UPCOMING_CHARGE and due.membership_id in ending)]


def _already(dues: list[Due], memberships: list[Membership]) -> tuple[set[Due], dict[Due, int]]:
    """The dues that have their notice: one of that date, or one of the same renewal moment whose
    date read differently then (the member's home moved to a clinic in another zone since); and,
    apart, the dues whose notice of that date was withdrawn (it did not apply when it was to go:
    due again, it is planned again, the same row)."""
    ends = {m.pk: m.current_period_end for m in memberships}
    by_renewal = {(due.membership_id, due.kind): due for due in dues}
    done, withdrawn = set(), {}
    for notice_id, membership_id, kind, boundary_date, boundary_at, status in (
            MemberNotice.objects.filter(membership_id__in=list(ends))
            .values_list("pk", "membership_id", "kind", "boundary_date", "boundary_at", "status")):
        if status == NoticeStatus.WITHDRAWN:
            withdrawn[Due(membership_id, kind, boundary_date)] = notice_id
            continue
        done.add(Due(membership_id, kind, boundary_date))
        if boundary_at == ends.get(membership_id) and (membership_id, kind) in by_renewal:
            done.add(by_renewal[(membership_id, kind)])
    return done, withdrawn


def due_membership_ids(*, now: datetime) -> list[int]:
    """Memberships with a notice due now that they do not have yet (a read: no lock)."""
    days = notice_days()
    widest = max([DEFAULT_NOTICE_DAYS, *(d for pair in days.values() for d in pair)])
    rows = list(_open_memberships(now=now, horizon=now + timedelta(days=widest + 1))
                .select_related("member__practice", "member__home_location").order_by("pk"))
    dues = _renewing([due for membership in rows for due in dues_of(membership, days=days, now=now)], rows)
    done, _ = _already(dues, rows)
    return sorted({due.membership_id for due in dues if due not in done})


def close_unsent(*, now: datetime) -> int:
    """Notices still waiting when their renewal came (the practice moved back below the stage, an
    SMS held until after it): what did not go is skipped, so the notice says it never went."""
    late = MemberNotice.objects.filter(status=NoticeStatus.QUEUED, boundary_at__lte=now)
    with transaction.atomic():
        for field in ("email_status", "sms_status"):
            late.filter(**{field: ChannelStatus.QUEUED}).update(**{field: ChannelStatus.SKIPPED})
        return late.update(status=NoticeStatus.SKIPPED, note="not sent before the renewal")


def plan_notices(*, now: datetime, batch: int = BATCH) -> dict[str, int]:
    """The scheduled run: every notice due now, written once; the ones the renewal overtook closed.
    Returns counts by outcome."""
    counts: dict[str, int] = {}
    closed = close_unsent(now=now)
    if closed:
        counts["closed_unsent"] = closed
    ids = due_membership_ids(now=now)
    for start in range(0, len(ids), batch):
        for outcome, n in plan_batch(ids[start:start + batch], now=now).items():
            counts[outcome] = counts.get(outcome, 0) + n
    return counts


@transaction.atomic
def plan_batch(membership_ids: list[int], *, now: datetime) -> dict[str, int]:
    """Lock the batch's memberships (skipping those another run holds), decide again under the lock
    what is still due and not sent, and write it."""
    locked = list(_open_memberships(now=now, horizon=now + timedelta(days=31)).filter(pk__in=membership_ids)
                  .select_related("member__practice", "member__home_location", "tier", "pending_tier")
                  .select_for_update(skip_locked=True, of=("self",)).order_by("pk"))
    days = notice_days()
    by_id = {membership.pk: membership for membership in locked}
    dues = [(by_id[due.membership_id], due) for due in _renewing(
        [due for membership in locked for due in dues_of(membership, days=days, now=now)], locked)]
    done, withdrawn = _already([due for _, due in dues], locked)
    dues = [(membership, due) for membership, due in dues if due not in done]
    prices = _location_prices(locked)
    previews = preview_next_boundaries(memberships=[m for m, due in dues if due.kind == NoticeKind.EXPIRING_CREDIT])
    notices, again = [], []
    for membership, due in dues:
        notice = build_notice(membership, due, prices=prices, expiring=previews.get(membership.pk, {}), now=now)
        if notice is None:
            continue
        if due in withdrawn:
            if _plan_again(notice, notice_id=withdrawn[due]):
                again.append(notice)
        else:
            notices.append(notice)
    if notices:
        sql.insert_many(notices)
    if notices or again:
        record_events([event for notice in notices + again for event in notice_events(notice, now=now)])
    counts: dict[str, int] = {}
    for notice in notices:
        key = f"{notice.kind}_{notice.status}"
        counts[key] = counts.get(key, 0) + 1
    for notice in again:
        key = f"{notice.kind}_planned_again"
        counts[key] = counts.get(key, 0) + 1
    logger.info("notices planned for %s memberships: %s", len(locked), counts)
    return counts


PLANNED_AGAIN = ("amount_cents", "currency", "nudged", "status", "email_status", "sms_status", "note", "created_at",
                 "boundary_at")


def _plan_again(notice: MemberNotice, *, notice_id: int) -> bool:
    """Write `notice` over its withdrawn row (still withdrawn: nothing of it went meanwhile), its
    channels decided again and `created_at` now. An earlier delivery of the row still waiting (a
    text held for a reply) and the new one send a channel once: each takes the row's lock and sends
    only a channel still queued."""
    planned = MemberNotice.objects.filter(pk=notice_id, status=NoticeStatus.WITHDRAWN).update(
        **{field: getattr(notice, field) for field in PLANNED_AGAIN})
    notice.pk = notice_id
    return bool(planned)


def _location_prices(memberships: list[Membership]) -> dict[tuple[int, int], int]:
    pairs = {((m.pending_tier_id or m.tier_id), m.price_location_id) for m in memberships if m.price_location_id}
    if not pairs:
        return {}
    rows = TierLocationPrice.objects.filter(tier_id__in={t for t, _ in pairs}, location_id__in={loc for _, loc in pairs})
    return {(row.tier_id, row.location_id): row.price_cents for row in rows}


def build_notice(membership: Membership, due: Due, *, prices: dict, expiring: dict[int, int],
                 now: datetime) -> MemberNotice | None:
    """The notice for a due item, with its channels decided: email to an address, SMS with consent
    and no STOP on file. `expiring`: the dry run of the boundary (service id → quantity). None when
    there is nothing to say (a free renewal; nothing would expire)."""
    member = membership.member
    tier = membership.pending_tier or membership.tier
    notice = MemberNotice(practice_id=member.practice_id, member=member, membership=membership, kind=due.kind,
                          boundary_date=due.boundary_date, boundary_at=membership.current_period_end,
                          currency=tier.currency, created_at=now)
    notice.practice = member.practice
    if due.kind == NoticeKind.UPCOMING_CHARGE:
        notice.amount_cents = prices.get((tier.pk, membership.price_location_id), tier.price_cents)
        if notice.amount_cents <= 0:
            return None
    else:
        notice.nudged = {str(sid): q for sid, q in expiring.items() if q > 0}
        if not notice.nudged:
            return None
    notes = []
    notice.email_status = ChannelStatus.QUEUED if member.email else ChannelStatus.SKIPPED
    if not member.email:
        notes.append("no email address")
    notice.sms_status = ChannelStatus.QUEUED if member.can_receive_sms else ChannelStatus.SKIPPED
    if not member.can_receive_sms:
        notes.append("SMS: opted out (STOP)" if member.sms_opted_out_at else
                     "SMS: no consent" if member.phone else "SMS: no mobile number")
    queued = ChannelStatus.QUEUED in (notice.email_status, notice.sms_status)
    notice.status = NoticeStatus.QUEUED if queued else NoticeStatus.SKIPPED
    notice.note = "; ".join(notes)[:200]
    return notice


def notice_events(notice: MemberNotice, *, now: datetime) -> list[Event]:
    """One timeline event per queued channel (the outbox's `member_notice` destination sends each),
    or one that says why nothing was sent. Ids and dates only: no amount, tier or treatment."""
    label, when = timeline_label(notice.kind), day(notice.boundary_date)
    base = {"notice_id": notice.pk, "notice_kind": notice.kind}
    channels = [channel for channel, status in (("email", notice.email_status), ("sms", notice.sms_status))
                if status == ChannelStatus.QUEUED]
    if not channels:
        return [_event(notice, summary=f"{label} not sent ({when}): {notice.note}", payload=base, now=now)]
    return [_event(notice, summary=f"{label} queued by {'SMS' if channel == 'sms' else 'email'} ({when})",
                   payload={**base, "channel": channel}, now=now) for channel in channels]


def _event(notice: MemberNotice, *, summary: str, payload: dict, now: datetime) -> Event:
    event = Event(practice_id=notice.practice_id, member=notice.member, membership=notice.membership,
                  kind=EventKind.NOTE, summary=summary[:300], payload=payload, actor_type=SYSTEM.type,
                  actor_user_id=None, created_at=now)
    event.practice = notice.practice      # the outbox's fan-out reads it: spare it a query
    return event
