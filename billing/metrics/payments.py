"""Failed charges and what was recovered of them, month by month, from the timeline."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from memberships.models import Event, EventKind

from .months import aware, for_practice, month_starts


@dataclass
class FailedRecovered:
    months: list[date]
    failed_cents: list[int]
    recovered_cents: list[int]
    failed_count: int
    recovered_count: int
    open_count: int
    open_cents: int


def failed_vs_recovered(*, practice_id: int | None, now: datetime, months: int = 12) -> FailedRecovered:
    """Dollars of failed charges by the month they first failed, and of those recovered by the month
    they were recovered. One failed invoice counts once however many attempts failed (payload
    `invoice_ref`, `amount_cents` of PAYMENT_FAILED events); a RECOVERED event names the invoice. One
    the processor forgave (voided, cancelled, written off: a DUNNING_CLOSED or RECOVERED event marked
    `forgiven`) is neither recovered nor open; one written off and paid after all is recovered (its
    case's DUNNING_CLOSED event is marked `paid_after_write_off`: the membership may be active by then)."""
    starts = month_starts(now=now, months=months)
    events = payment_events(practice_id=practice_id, now=now, starts=starts)
    return tally_failed_recovered(events.values("kind", "membership_id", "created_at", "payload"), starts=starts)


def payment_events(*, practice_id, now: datetime, starts: list[date]):
    """The failure and recovery events the figures are made of, oldest first (two months before the
    first month too: a recovery then may settle a failure from before)."""
    return for_practice(Event.objects.filter(
        Q(kind__in=[EventKind.PAYMENT_FAILED, EventKind.PAYMENT_ACTION_REQUIRED, EventKind.RECOVERED])
        | Q(kind=EventKind.DUNNING_CLOSED, payload__has_key="forgiven")
        | Q(kind=EventKind.DUNNING_CLOSED, payload__has_key="paid_after_write_off"),
        created_at__gte=aware(starts[0]) - timedelta(days=62), created_at__lte=now,
    ), practice_id, "practice_id").order_by("created_at", "id")


def tally_failed_recovered(events, *, starts: list[date]) -> FailedRecovered:
    """The figures of `events` (dicts: kind, membership_id, created_at, payload; oldest first) over
    the months `starts`: any subset of members' events (a location's) tallies on its own."""
    index = {s: i for i, s in enumerate(starts)}
    zone = timezone.get_current_timezone()      # month_key's, read once: thousands of events

    def month_key(moment: datetime) -> date:
        return moment.astimezone(zone).date().replace(day=1)

    failed = [0] * len(starts)
    recovered = [0] * len(starts)
    amounts: dict[str, int] = {}
    open_refs: dict[int, set[str]] = defaultdict(set)
    recovered_refs: set[str] = set()
    for event in events:
        payload = event["payload"] or {}
        ref = payload.get("invoice_ref") or f"membership:{event['membership_id']}"
        if payload.get("forgiven"):                 # no payment expected: no longer open, not recovered
            open_refs[event["membership_id"]].discard(ref)
            continue
        if event["kind"] == EventKind.RECOVERED or payload.get("paid_after_write_off"):
            refs = {ref} if ref in amounts else set(open_refs[event["membership_id"]])
            for r in refs:
                if r in recovered_refs:
                    continue
                recovered_refs.add(r)
                i = index.get(month_key(event["created_at"]))
                if i is not None:
                    recovered[i] += amounts.get(r, 0)
            open_refs[event["membership_id"]] -= refs
            continue
        if ref in amounts:
            continue  # a later attempt of the same invoice
        amounts[ref] = int(payload.get("amount_cents") or 0)
        open_refs[event["membership_id"]].add(ref)
        i = index.get(month_key(event["created_at"]))
        if i is not None:
            failed[i] += amounts[ref]
    still_open = {r for refs in open_refs.values() for r in refs}
    return FailedRecovered(months=starts, failed_cents=failed, recovered_cents=recovered,
                           failed_count=len(amounts), recovered_count=len(recovered_refs),
                           open_count=len(still_open), open_cents=sum(amounts[r] for r in still_open))
