"""The webhook inbox's processing: stored events (`integrations.intake`) applied by the workers.

A worker takes a batch of due events (SKIP LOCKED) and applies it in one transaction, membership by
membership in ascending id order — each membership's events in the processor's own order — with one
savepoint per event, so a worker killed half-way leaves its events `received` and the next run
applies them exactly once. The plain renewals of a batch are recorded together
(`billing.renewals`). Events whose object we do not know yet, that need the processor while it is
unreachable, or that met another worker's lock, stay `received` with a later `next_attempt_at`
(bounded by INBOX_MAX_ATTEMPTS, then `failed`; those of a join's subscription while its bank debit
settles wait up to three weeks, `join_retention.SETTLING_WAIT`). Anything else that raises — bad
data, a bug — is undone to the event's savepoint and the event ends `failed` with the error (the
attempt counted), for a manager to look at and re-process from the admin; the batch goes on with the
next event.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import services as billing
from billing.facts import ChargeSucceeded
from memberships.failures import error_text, log_failure
from memberships.models import Membership

# Storing is `integrations.intake`'s; its names stay importable here for callers that store and process.
from . import due
from .intake import RECORD_SOURCE_PREFIX, SOURCE_STRIPE, has_nul, retry_delay, store_event  # noqa: F401
from .models import InboundEvent, InboundStatus
from .processor_facts import _practice_of, apply_fact
from .processors import square_events, square_inbound, stripe_events
from .processors.base import IgnoredEvent, ProcessorUnavailable

logger = logging.getLogger(__name__)

# Each processor's stored events, read into their envelope and fact (no network).
_PARSERS = {SOURCE_STRIPE: stripe_events.parse_event, square_events.SOURCE: square_inbound.parse_stored}


def process_inbound(inbound_id: int, *, now: datetime, force: bool = False) -> str | None:
    """Process one stored event if it is due (or `force`: a manager's re-process). Returns the new
    status, or None when another worker holds it or it is not due / already done."""
    reads = _read(InboundEvent.objects.filter(pk=inbound_id), limit=1)
    with transaction.atomic():
        qs = InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).select_related("practice").filter(
            pk=inbound_id)
        if not force:
            qs = qs.filter(status=InboundStatus.RECEIVED).filter(Q(next_attempt_at__isnull=True)
                                                                  | Q(next_attempt_at__lte=now))
        row = qs.first()
        if row is None:
            return None
        item = (row, _Parsed.of(row))
        if not _use_reads([item], reads, now=now):
            _apply_row(*item, now=now)
        _save_outcomes([row])
        return row.status


def process_due(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Process one batch of the received events that are due (at most `limit`, INBOX_BATCH_SIZE by
    default), in one transaction. Safe in several workers at once: rows are taken with SKIP LOCKED,
    and the batch is applied membership by membership in ascending id order — each membership's
    events in the processor's own order — so two workers lock memberships in the same order and
    never deadlock each other; a membership one worker holds makes the other wait, never fail. Each
    event has its own savepoint: one that cannot be processed ends `failed` (or waits, for what may
    come: an unknown membership, the processor down, a lock conflict) and never holds up the others.
    Returns counts per outcome; {} when nothing was due."""
    from .records import inbound_batch as record_batch

    now = now or timezone.now()
    limit = limit or settings.INBOX_BATCH_SIZE
    started = time.perf_counter()
    counts = _process_card_events(now=now, limit=limit)
    reads = _read_ahead(now=now, limit=limit)
    try:
        with transaction.atomic():
            rows = list(
                InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).select_related("practice")
                .filter(status=InboundStatus.RECEIVED)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .exclude(_ON_THEIR_OWN)
                .order_by("received_at", "id")[:limit]
            )
            if not rows:
                return counts
            ordered = _in_processor_order(rows)
            done = _use_reads(ordered, reads, now=now)
            records = record_batch.prepare([r for r, _ in ordered if r.source.startswith(RECORD_SOURCE_PREFIX)],
                                           now=now)
            _lock_memberships(ordered, also=records.membership_ids)
            done |= _apply_renewals([item for item in ordered if item[0].pk not in done], now=now)
            for row, parsed in ordered:
                if row.pk not in done and row not in records:
                    _apply_row(row, parsed, now=now)
            record_batch.apply(records, now=now)     # the record's webhooks: treatments together, in order
            _save_outcomes(rows)
    except Exception as exc:  # the batch's own bookkeeping failed: fall back to one row at a time
        if due.is_lock_conflict(exc):  # the database was busy (SQLite's write lock, a deadlock): next sweep
            logger.info("inbox batch not taken: the database was busy; the next sweep takes it")
            return {}
        log_failure(logger, "inbox batch failed; processing its rows one by one", exc=exc)
        return _process_one_by_one(now=now, limit=limit)
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    elapsed = time.perf_counter() - started
    logger.info("inbox batch: %s in %.2f s (%.0f/s)", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
                elapsed, len(rows) / elapsed if elapsed > 0 else 0.0)
    return counts


# A card saved on the hosted page, a new default card: applying them calls Stripe (the card becomes
# the default, the open invoice is paid with it), so they are not part of a batch that holds
# memberships locked — each is applied on its own, no membership locked while Stripe answers.
_CARD_EVENTS = stripe_events.CHECKOUT | stripe_events.CUSTOMER
# Square's `subscription.created` likewise: a join paid on Square's page names no membership yet, and
# applying it reads the subscription's customer from Square and enrolls (`square_checkout`), so the
# first invoice's event in the next batch finds the membership.
_ON_THEIR_OWN = (Q(source=SOURCE_STRIPE, event_type__in=_CARD_EVENTS)
                 | Q(source=square_events.SOURCE, event_type="subscription.created"))


def _process_card_events(*, now: datetime, limit: int) -> dict[str, int]:
    return _one_by_one(InboundEvent.objects.filter(_ON_THEIR_OWN, status=InboundStatus.RECEIVED), now=now,
                       limit=limit)


def _process_one_by_one(*, now: datetime, limit: int) -> dict[str, int]:
    return _one_by_one(InboundEvent.objects.filter(status=InboundStatus.RECEIVED), now=now, limit=limit)


def _one_by_one(rows, *, now: datetime, limit: int) -> dict[str, int]:
    """The due ones of `rows`, each in its own transaction (`process_inbound`). A row whose own
    bookkeeping fails is marked failed on its own; one that met a busy database waits for the next
    sweep (not its fault)."""
    counts: dict[str, int] = {}
    ids = list(rows.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
               .order_by("received_at", "id").values_list("pk", flat=True)[:limit])
    for inbound_id in ids:
        try:
            status = process_inbound(inbound_id, now=now)
        except Exception as exc:
            if due.is_lock_conflict(exc):
                continue
            log_failure(logger, "inbound event %s could not be processed", inbound_id, exc=exc)
            status = _mark_failed(inbound_id, exc=exc, now=now)
        if status:
            counts[status] = counts.get(status, 0) + 1
    return counts


class _Parsed:
    """A stored processor event, parsed once (no network): its fact and what orders it."""

    __slots__ = ("fact", "envelope", "membership_ref", "subscription_ref", "created", "membership_id")

    def __init__(self, envelope, fact):
        self.envelope, self.fact, self.membership_id = envelope, fact, None
        self.membership_ref = getattr(fact, "membership_ref", "") or ""
        self.subscription_ref = getattr(fact, "subscription_ref", "") or ""
        self.created = int(getattr(envelope, "created", 0) or 0)

    @classmethod
    def of(cls, row: InboundEvent) -> "_Parsed | None":
        if row.source not in _PARSERS:
            return None
        try:
            envelope = _PARSERS[row.source](row.payload)
        except Exception:  # bad data: applying it will say so, in the row's own savepoint
            return cls(None, None)
        return cls(envelope, envelope.fact)


def _in_processor_order(rows: list[InboundEvent]) -> list[tuple[InboundEvent, "_Parsed | None"]]:
    """The batch membership by membership (ascending id: the lock order every worker shares), each
    membership's events in the processor's order (the event's `created`, then arrival). Events of no
    known membership, and the record's, keep their arrival order after them."""
    parsed = [(row, _Parsed.of(row)) for row in rows]
    subscriptions = {p.subscription_ref for _, p in parsed if p is not None and p.subscription_ref}
    by_subscription = dict(Membership.objects.filter(processor_subscription_id__in=subscriptions)
                           .values_list("processor_subscription_id", "pk")) if subscriptions else {}
    unknown = 1 << 62

    def key(item):
        row, p = item
        if p is None or p.fact is None:
            return (unknown, 0, row.pk)
        p.membership_id = by_subscription.get(p.subscription_ref) or billing.membership_pk(p.membership_ref)
        return (p.membership_id or unknown, p.created, row.pk)

    return sorted(parsed, key=key)


def _lock_memberships(ordered: list[tuple[InboundEvent, "_Parsed | None"]], *, also: set[int] = frozenset()) -> None:
    """Every membership the batch's events name (`also`: the record's), locked in one statement in
    ascending id order: workers never wait on each other in a cycle (later locks in the batch are
    ones it holds)."""
    ids = sorted({p.membership_id for _, p in ordered if p is not None and p.membership_id} | set(also))
    if ids and connection.features.has_select_for_update:
        list(Membership.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
             .values_list("pk", flat=True))


def _read_ahead(*, now: datetime, limit: int) -> dict[int, object]:
    """What the due events leave out and the processor knows (a failure's decline code), read before
    the batch's transaction begins — no membership and no database write lock is held while the
    processor takes its time. {row id: the completed envelope, or the ProcessorUnavailable it raised}.
    After the first read the processor refuses or times out, the rest are not tried: they wait."""
    return _read(InboundEvent.objects.filter(status=InboundStatus.RECEIVED)
                 .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                 .order_by("received_at", "id"), limit=limit)


def _read(rows, *, limit: int) -> dict[int, object]:
    from .processors import stripe_reads

    reads: dict[int, object] = {}
    candidates = (rows.filter(source=SOURCE_STRIPE, event_type__in=stripe_events.READ_AHEAD)
                  .values_list("pk", "payload")[:limit])
    for pk, payload in candidates:
        try:
            reads[pk] = stripe_reads.complete_event(payload, stripe_events.parse_event(payload))
        except ProcessorUnavailable as exc:
            reads[pk] = exc
            break
        except Exception:  # bad data: applying it says so, in the row's own savepoint
            continue
    return reads


def _use_reads(ordered: list[tuple[InboundEvent, "_Parsed | None"]], reads: dict[int, object], *,
               now: datetime) -> set[int]:
    """The batch's events completed with what was read ahead; an event that needs a read it did not
    get (the processor was down, or the event came in since) waits — nothing is read from the
    processor inside the batch. Returns the ids of the rows decided here (waiting)."""
    from .processors import stripe_reads

    waiting = set()
    for row, parsed in ordered:
        if parsed is None or parsed.envelope is None:
            continue
        read = reads.get(row.pk)
        if hasattr(read, "fact"):
            parsed.envelope, parsed.fact = read, read.fact
        elif stripe_reads.needs_read(parsed.envelope):
            if read is None:       # not asked (the processor was down for an earlier one, or it is new): no attempt
                _wait(row, "waiting: the processor was not asked yet", now=now, soon=True)
            else:
                row.attempts += 1
                _wait(row, f"waiting: {read}", now=now)
            waiting.add(row.pk)
    return waiting


def _apply_renewals(ordered: list[tuple[InboundEvent, "_Parsed | None"]], *, now: datetime) -> set[int]:
    """The batch's plain paid renewals (a paid invoice, the only event of its membership in the
    batch) recorded together (`billing.renewals`); returns the ids of the rows it processed. Whatever
    it does not take — or all of them, if it raises — goes the ordinary way, event by event."""
    from billing import renewals

    per_membership: dict[int, int] = {}
    for _, parsed in ordered:
        if parsed is not None and parsed.membership_id:
            per_membership[parsed.membership_id] = per_membership.get(parsed.membership_id, 0) + 1
    candidates = {parsed.fact.invoice_ref: row for row, parsed in ordered
                  if parsed is not None and isinstance(parsed.fact, ChargeSucceeded) and parsed.subscription_ref
                  and per_membership.get(parsed.membership_id) == 1}
    if len(candidates) < 2:
        return set()
    facts = [parsed.fact for row, parsed in ordered if parsed is not None and parsed.fact is not None
             and getattr(parsed.fact, "invoice_ref", None) in candidates and row is candidates[parsed.fact.invoice_ref]]
    try:
        with transaction.atomic():
            recorded, _ = renewals.record_renewals(charges=facts, now=now)
    except Exception as exc:  # nothing of it is kept: every renewal goes the ordinary way
        log_failure(logger, "bulk renewals failed; applying them one by one", exc=exc)
        return set()
    done = set()
    for invoice_ref, practice_id in recorded.items():
        row = candidates[invoice_ref]
        row.attempts += 1
        row.status, row.error, row.practice_id = InboundStatus.PROCESSED, "", practice_id
        row.processed_at, row.next_attempt_at = now, None
        done.add(row.pk)
    return done


_OUTCOME_FIELDS = ["status", "error", "attempts", "processed_at", "next_attempt_at", "practice"]


def _save_outcomes(rows: list[InboundEvent]) -> None:
    """Every row's outcome in one statement."""
    if connection.vendor != "postgresql":
        InboundEvent.objects.bulk_update(rows, _OUTCOME_FIELDS)
        return
    from memberships.services.sql import update_from_values

    update_from_values(
        InboundEvent, [(r.pk, r.status, r.error, r.attempts, r.processed_at, r.next_attempt_at, r.practice_id)
                       for r in rows],
        set_sql="status = v.status, error = v.error, attempts = v.attempts, processed_at = v.processed_at, "
                "next_attempt_at = v.next_attempt_at, practice_id = v.practice_id",
        columns=[("status", "text"), ("error", "text"), ("attempts", "integer"), ("processed_at", "timestamptz"),
                 ("next_attempt_at", "timestamptz"), ("practice_id", "bigint")])


def _apply_row(row: InboundEvent, parsed: "_Parsed | None", *, now: datetime) -> None:
    """Apply one locked row in its own savepoint and set (not save) its outcome."""
    if row.source.startswith(RECORD_SOURCE_PREFIX):  # the record's webhooks have their own processing
        from .records.inbound import apply_inbound_row

        apply_inbound_row(row, now=now, save=False)
        return
    row.attempts += 1
    try:
        with transaction.atomic():
            fact = _complete(row, parsed)
            if isinstance(fact, IgnoredEvent):
                row.status, row.error = InboundStatus.IGNORED, fact.reason[:2000]
            else:
                result = apply_fact(fact, now=now)
                row.status, row.error = InboundStatus.PROCESSED, ""
                row.practice_id = _practice_of(result) or row.practice_id
            row.processed_at, row.next_attempt_at = now, None
    except (billing.UnknownMembership, ProcessorUnavailable) as exc:
        waited_for = getattr(exc, "context", {}).get("subscription_ref") or ""
        _wait(row, f"waiting: {exc}", now=now, subscription_ref=waited_for)
    except Exception as exc:  # a bug or bad data: this row fails, visibly; the batch goes on
        if due.is_lock_conflict(exc):       # not the event's fault: no attempt spent
            row.attempts -= 1
            _wait(row, "waiting: another worker held this membership", now=now, soon=True)
            return
        log_failure(logger, "inbound event %s (%s, %s) failed", row.pk, row.source, row.event_type, exc=exc)
        row.status, row.error = InboundStatus.FAILED, error_text(exc)
        row.processed_at, row.next_attempt_at = now, None


def _wait(row: InboundEvent, error: str, *, now: datetime, soon: bool = False, subscription_ref: str = "") -> None:
    row.error = error[:2000]
    if not soon and row.attempts >= settings.INBOX_MAX_ATTEMPTS and not _settling(row, subscription_ref, now=now):
        row.status, row.processed_at = InboundStatus.FAILED, now
    else:
        row.status = InboundStatus.RECEIVED
        row.next_attempt_at = now + (timedelta(seconds=random.uniform(0.1, 1.0)) if soon
                                     else retry_delay(row.attempts))


def _settling(row: InboundEvent, subscription_ref: str, *, now: datetime) -> bool:
    """Whether the event waits for the subscription of a join whose bank debit is still settling (days,
    not hours): it keeps waiting past its attempts, for up to `SETTLING_WAIT` since it came in; the
    enrollment wakes it. Once the payment fails, or the join is gone, its attempts count again."""
    from .processors.join_retention import SETTLING_WAIT, settling_subscriptions

    return bool(subscription_ref) and now - row.received_at < SETTLING_WAIT and \
        row.source == SOURCE_STRIPE and subscription_ref in settling_subscriptions([subscription_ref])


def _complete(row: InboundEvent, parsed: "_Parsed | None"):
    """The row's fact, as `_use_reads` completed it (an event that still needed the processor was
    made to wait there): nothing is read from the processor here."""
    if row.source not in _PARSERS:
        return IgnoredEvent(f"no parser for source {row.source}")
    if parsed is None or parsed.envelope is None:
        return _PARSERS[row.source](row.payload).fact      # raises what is wrong with it
    return parsed.fact


def _mark_failed(inbound_id: int, *, exc: Exception, now: datetime) -> str | None:
    with transaction.atomic():
        updated = InboundEvent.objects.filter(pk=inbound_id, status=InboundStatus.RECEIVED).update(
            status=InboundStatus.FAILED, error=error_text(exc), attempts=F("attempts") + 1, processed_at=now,
            next_attempt_at=None)
    return InboundStatus.FAILED if updated else None


def reprocess(row: InboundEvent, *, now: datetime) -> str | None:
    """A manager's re-process of a failed (or any) event: back to received and processed now, with a
    fresh round of retries (an event that ran out of them waits again rather than failing at its
    first wait). Idempotent services make it safe for an event that was applied already."""
    InboundEvent.objects.filter(pk=row.pk).update(status=InboundStatus.RECEIVED, next_attempt_at=None, attempts=0)
    return process_inbound(row.pk, now=now, force=True)
