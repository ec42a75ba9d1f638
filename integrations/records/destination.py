"""The `record` outbox destination: every ledger change the chart should show becomes one delivery
to the practice's record, through the practice's adapter.

What a delivery does: it writes the member's chart panel *as the ledger has it at delivery time*
(patient link, membership tier and status, entitlement summary, chart flag set or cleared). Each
part is an idempotent upsert, so retries, duplicates and out-of-order deliveries converge on the
current state and never double anything.

Stage: every record delivery needs `alerts`. The chart is a read-only mirror of the ledger for the
front desk (it moves no money and spends nothing), so flags, balances and the membership's tier and
status reach it from `alerts` on — a pause or cancellation must be visible at the desk before
anyone redeems. In `observe` the delivery is recorded as SHADOWED ("would have …"). The
`tier_sync` stage governs the processor side (what the member is charged), not this mirror.

Practices on the `builtin` adapter get no record deliveries at all: our own pages are the chart.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from integrations import outbox
from integrations.models import Delivery
from memberships.failures import error_text, log_failure
from memberships.models import AutomationStage, Event, EventKind, Member

from . import get_adapter, member_record_location, record_name
from .base import RecordRejected, RecordUnavailable
from .selectors import member_state

logger = logging.getLogger(__name__)

# The ledger changes the chart shows.
RECORD_EVENT_KINDS = frozenset({
    EventKind.ENROLLED, EventKind.REFILLED, EventKind.REDEEMED, EventKind.REVERSED, EventKind.ADJUSTED,
    EventKind.EXPIRED, EventKind.TIER_CHANGED, EventKind.PAUSED, EventKind.RESUMED, EventKind.CANCELLED,
    EventKind.PAST_DUE, EventKind.RECOVERED, EventKind.LAPSED, EventKind.FLAGGED, EventKind.FLAG_CLEARED,
    EventKind.IMPORTED,
})


def _moved_home(event: Event) -> bool:
    """A member's home location changed: their chart is written where it lives now (the new location's
    own record, or the practice's)."""
    return event.kind == EventKind.NOTE and (event.payload or {}).get("change") == "home_location"


def _record_of(event: Event) -> str:
    """The record the event's member's chart lives in: their home location's own, else the practice's.
    Reads only what the event's writer loaded (no query for a member without a home location;
    writers of many events select `member__home_location`); the delivery reads the member afresh."""
    member = event.member if Event._meta.get_field("member").is_cached(event) else None
    if member is None or not member.__dict__.get("home_location_id"):
        return record_name(event.practice)
    return record_name(event.practice, member_record_location(member))


class RecordDestination:
    name = "record"
    repeatable = True   # idempotent upserts of the chart as it is now: a repeat writes the same

    def wants(self, event: Event) -> bool:
        if (event.kind not in RECORD_EVENT_KINDS and not _moved_home(event)) or event.member_id is None:
            return False
        return _record_of(event) != "builtin"

    def required_stage(self, event: Event) -> str:
        return AutomationStage.ALERTS

    def describe(self, event: Event) -> str:
        adapter = _record_of(event)
        if event.kind in (EventKind.PAST_DUE, EventKind.LAPSED, EventKind.FLAGGED):
            what = "set the chart flag"
        elif event.kind in (EventKind.RECOVERED, EventKind.FLAG_CLEARED, EventKind.RESUMED):
            what = "clear the chart flag"
        elif event.kind in (EventKind.PAUSED, EventKind.CANCELLED):
            what = f"write the {event.get_kind_display().lower()} status and set the chart flag"
        elif event.kind in (EventKind.ENROLLED, EventKind.TIER_CHANGED) or _moved_home(event):
            what = "write the membership (tier, status) and balances"
        else:
            what = "write the entitlement balances"
        return f"{what} in the {adapter} record for member {event.member_id} (event {event.pk})"

    def deliver(self, event: Event, *, delivery: Delivery, now: datetime) -> dict:
        try:
            with transaction.atomic():  # a failure inside rolls back only our own writes
                # One delivery per member at a time: the state is read after the lock, so a slower
                # worker never writes an older chart panel over a newer one.
                member = Member.objects.select_for_update().get(pk=event.member_id)
                adapter = get_adapter(event.practice, member_record_location(member))
                return adapter.sync_member(member, member_state(member=member),
                                           event_ref=delivery.idempotency_key, now=now)
        except RecordUnavailable as exc:
            raise outbox.RetryableDeliveryError(str(exc)) from exc
        except RecordRejected as exc:
            raise outbox.PermanentDeliveryError(str(exc)) from exc
        except Exception as exc:  # an unexpected failure: keep it in the queue, visible, bounded by retries
            log_failure(logger, "record delivery %s failed unexpectedly", delivery.pk, exc=exc)
            raise outbox.RetryableDeliveryError(error_text(exc)) from exc


destination = outbox.register(RecordDestination())

