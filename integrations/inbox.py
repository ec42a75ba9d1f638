"""The webhook inbox: store each verified event once, then process it in a task.

Processing happens under the event row's lock (SKIP LOCKED), in the same transaction as the
ledger changes it causes and the status it ends in, so a worker killed half-way leaves the event
`received` and the next run applies it exactly once. Events whose object we do not know yet, or
that need the processor when it is unreachable, stay `received` with a later `next_attempt_at`
(bounded by INBOX_MAX_ATTEMPTS, then `failed`). Anything else that raises — bad data, a bug, a
database error — is undone to the row's own savepoint and the row ends `failed` with the error (the
attempt counted), for a manager to look at and re-process from the admin; the sweep goes on with
the next row, so one bad event never holds up the others.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import services as billing
from billing.facts import ChargeActionRequired, ChargeFailed, ChargeSucceeded, SubscriptionChanged
from memberships.failures import error_text, log_failure
from memberships.models import Membership

from .models import InboundEvent, InboundStatus
from .processors.base import CardSaved, DefaultCardChanged, IgnoredEvent, ProcessorUnavailable

logger = logging.getLogger(__name__)

SOURCE_STRIPE = "stripe"
RECORD_SOURCE_PREFIX = "record:"

# A NUL character (the JSON escape \u0000 not itself escaped, or a raw NUL byte): PostgreSQL's jsonb
# cannot store it, so such a body is refused before it is stored.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000|\x00")


def has_nul(body: bytes) -> bool:
    # Two substring scans (memchr-fast) settle almost every body; the regex only decides whether a
    # "\u0000" that is there is escaped itself.
    if b"\x00" in body:
        return True
    return b"\\u0000" in body and _NUL.search(body) is not None


def store_event(*, source: str, event: dict, handled: bool, now: datetime, raw: bytes | None = None
                ) -> tuple[int | None, bool]:
    """Insert the event once: one statement (`ON CONFLICT DO NOTHING`), one commit. Returns (row id,
    created); a duplicate returns (None, False). Unknown types are stored already `ignored`. `raw`:
    the verified body, stored as is (no re-serialization). Processing is queued after the commit."""
    table = InboundEvent._meta.db_table
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    payload = raw.decode("utf-8") if raw is not None else json.dumps(event)
    status = InboundStatus.RECEIVED if handled else InboundStatus.IGNORED
    # One statement, committed on its own (autocommit): the request's only round trip that counts.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (source, event_id, event_type, payload, status, error, attempts, "
            f"object_created, received_at, processed_at, next_attempt_at, practice_id) "
            f"VALUES (%s, %s, %s, %s{'::jsonb' if postgres else ''}, %s, '', 0, %s, %s, %s, NULL, NULL) "
            f"ON CONFLICT (source, event_id) DO NOTHING RETURNING id",
            [source, str(event["id"])[:200], str(event["type"])[:100], payload, status,
             int(event.get("created") or 0) or None, adapt(now), None if handled else adapt(now)],
        )
        row = cursor.fetchone()
    if row is None:
        return None, False
    inbound_id = row[0]
    if handled:
        # Runs at once in autocommit; inside a caller's transaction, after it commits.
        transaction.on_commit(lambda: trigger_processing(inbound_id))
    return inbound_id, True


_last_trigger = 0.0


def trigger_processing(inbound_id: int) -> None:
    """Queue the processing of a stored event on django-q2. With INBOX_TRIGGER_SECONDS > 0 the
    tasks are coalesced: a web process queues one backlog drain at most that often, and a drain
    re-checks that long after it found nothing, so an event committed after a drain started always
    meets a later check (and the minute sweep stays as the safety net). 0: one task per event."""
    global _last_trigger
    from django_q.tasks import async_task

    interval = settings.INBOX_TRIGGER_SECONDS
    try:
        if interval <= 0:
            async_task("integrations.tasks.process_inbound_event", inbound_id, group="inbox")
            return
        clock = time.monotonic()
        if clock - _last_trigger < interval:
            return
        _last_trigger = clock
        async_task("integrations.tasks.process_inbound_backlog", group="inbox")
    except Exception:  # the stored row is the record of due work: the periodic sweep finds it
        logger.exception("could not queue inbound event %s; the sweep will process it", inbound_id)


def retry_delay(attempts: int) -> timedelta:
    base = settings.INBOX_RETRY_BASE_SECONDS
    ceiling = min(settings.INBOX_RETRY_MAX_SECONDS, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def apply_fact(fact, *, now: datetime):
    """Hand a normalized fact to billing. Returns the billing row (or None when ignored)."""
    if isinstance(fact, ChargeSucceeded):
        return billing.record_charge_succeeded(charge=fact, now=now)
    if isinstance(fact, ChargeFailed):
        return billing.record_charge_failed(charge=fact, now=now)
    if isinstance(fact, ChargeActionRequired):
        return billing.record_charge_action_required(charge=fact, now=now)
    if isinstance(fact, SubscriptionChanged):
        return billing.record_subscription_changed(change=fact, now=now)
    if isinstance(fact, CardSaved):
        return use_saved_card(fact, now=now)
    if isinstance(fact, DefaultCardChanged):
        return retry_with_new_default_card(fact, now=now)
    return None


def use_saved_card(fact: CardSaved, *, now: datetime):
    """The member's new card (from the hosted page) becomes the default, so the next retry — ours
    or the processor's — charges it. The member's own act: allowed at every automation stage."""
    from .processors import sync

    membership = billing.find_membership(membership_ref=fact.membership_ref, subscription_ref="")
    if membership is None:
        raise billing.UnknownMembership(f"No membership {fact.membership_ref or '?'} yet.")
    processor = sync.get_processor()
    card = processor.use_saved_card(customer_ref=fact.customer_ref, setup_ref=fact.setup_ref,
                                    subscription_ref=membership.processor_subscription_id,
                                    idempotency_key=f"card-saved:{fact.setup_ref}")
    from billing import dunning

    # An open dunning case pays its invoice with the new card now (once per card, capped per case).
    dunning.retry_open_cases_after_card_update(member=membership.member, payment_method_ref=card, now=now,
                                               source="card saved")
    return membership


class AmbiguousCustomer(Exception):
    """Several members carry the processor customer id: a manager has to untangle them."""


def retry_with_new_default_card(fact: DefaultCardChanged, *, now: datetime):
    """The processor reports a new default card for a customer (the Billing Portal's card update):
    the member's open dunning cases pay their invoice with it now, once per card. A customer that is
    no member of ours is ignored; one shared by several members fails the event for a manager."""
    from billing import dunning
    from memberships.models import Member

    members = list(Member.objects.filter(processor_customer_id=fact.customer_ref)[:2]) if fact.customer_ref else []
    if not members:
        return None
    if len(members) > 1:
        raise AmbiguousCustomer(f"processor customer {fact.customer_ref} belongs to several members")
    dunning.retry_open_cases_after_card_update(member=members[0], payment_method_ref=fact.payment_method_ref,
                                               now=now, source="default card changed")
    return members[0]


def _practice_of(result) -> int | None:
    if result is None:
        return None
    if getattr(result, "practice_id", None):
        return result.practice_id
    if getattr(result, "member", None) is not None:
        return result.member.practice_id
    membership = getattr(result, "membership", None)
    return membership.member.practice_id if membership is not None else None


def process_inbound(inbound_id: int, *, now: datetime, force: bool = False) -> str | None:
    """Process one stored event if it is due (or `force`: a manager's re-process). Returns the new
    status, or None when another worker holds it or it is not due / already done."""
    with transaction.atomic():
        qs = InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).select_related("practice").filter(
            pk=inbound_id)
        if not force:
            qs = qs.filter(status=InboundStatus.RECEIVED).filter(Q(next_attempt_at__isnull=True)
                                                                  | Q(next_attempt_at__lte=now))
        row = qs.first()
        if row is None:
            return None
        _apply_row(row, _Parsed.of(row), now=now)
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
    now = now or timezone.now()
    limit = limit or settings.INBOX_BATCH_SIZE
    started = time.perf_counter()
    try:
        with transaction.atomic():
            rows = list(
                InboundEvent.objects.select_for_update(skip_locked=True, of=("self",)).select_related("practice")
                .filter(status=InboundStatus.RECEIVED)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("received_at", "id")[:limit]
            )
            if not rows:
                return {}
            ordered = _in_processor_order(rows)
            done = _read_from_processor(ordered, now=now)
            done |= _apply_renewals([item for item in ordered if item[0].pk not in done], now=now)
            for row, parsed in ordered:
                if row.pk not in done:
                    _apply_row(row, parsed, now=now)
            _save_outcomes(rows)
    except Exception as exc:  # the batch's own bookkeeping failed: fall back to one row at a time
        log_failure(logger, "inbox batch failed; processing its rows one by one", exc=exc)
        return _process_one_by_one(now=now, limit=limit)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    elapsed = time.perf_counter() - started
    logger.info("inbox batch: %s in %.2f s (%.0f/s)", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
                elapsed, len(rows) / elapsed if elapsed > 0 else 0.0)
    return counts


def _process_one_by_one(*, now: datetime, limit: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    ids = list(InboundEvent.objects.filter(status=InboundStatus.RECEIVED)
               .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
               .order_by("received_at", "id").values_list("pk", flat=True)[:limit])
    for inbound_id in ids:
        try:
            status = process_inbound(inbound_id, now=now)
        except Exception as exc:  # even the row's own bookkeeping failed: mark it failed on its own
            log_failure(logger, "inbound event %s could not be processed", inbound_id, exc=exc)
            status = _mark_failed(inbound_id, exc=exc, now=now)
        if status:
            counts[status] = counts.get(status, 0) + 1
    return counts


class _Parsed:
    """A stored processor event, parsed once (no network): its fact and what orders it."""

    __slots__ = ("fact", "envelope", "membership_ref", "subscription_ref", "created", "completed")

    def __init__(self, envelope, fact):
        self.envelope, self.fact, self.completed = envelope, fact, False
        self.membership_ref = getattr(fact, "membership_ref", "") or ""
        self.subscription_ref = getattr(fact, "subscription_ref", "") or ""
        self.created = int(getattr(envelope, "created", 0) or 0)

    @classmethod
    def of(cls, row: InboundEvent) -> "_Parsed | None":
        if row.source != SOURCE_STRIPE:
            return None
        from .processors import stripe as stripe_adapter

        try:
            envelope = stripe_adapter.parse_event(row.payload)
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
        membership_id = by_subscription.get(p.subscription_ref) or billing.membership_pk(p.membership_ref) or unknown
        return (membership_id, p.created, row.pk)

    return sorted(parsed, key=key)


def _read_from_processor(ordered: list[tuple[InboundEvent, "_Parsed | None"]], *, now: datetime) -> set[int]:
    """What the events leave out and the processor knows (a failure's decline code), read before any
    membership is locked, so a slow processor holds up no other worker. Rows that must wait for it
    are decided here: returns their ids."""
    from .processors import stripe as stripe_adapter

    waiting = set()
    for row, parsed in ordered:
        if parsed is None or parsed.envelope is None:
            continue
        try:
            parsed.envelope = stripe_adapter.complete_event(row.payload, parsed.envelope)
            parsed.fact, parsed.completed = parsed.envelope.fact, True
        except ProcessorUnavailable as exc:
            row.attempts += 1
            _wait(row, f"waiting: {exc}", now=now)
            waiting.add(row.pk)
        except Exception:  # bad data: applying it says so, in the row's own savepoint
            continue
    return waiting


def _apply_renewals(ordered: list[tuple[InboundEvent, "_Parsed | None"]], *, now: datetime) -> set[int]:
    """The batch's plain paid renewals (a paid invoice, the only event of its membership in the
    batch) recorded together (`billing.renewals`); returns the ids of the rows it processed. Whatever
    it does not take — or all of them, if it raises — goes the ordinary way, event by event."""
    from billing import renewals

    per_subscription: dict[str, int] = {}
    for _, parsed in ordered:
        if parsed is not None and parsed.subscription_ref:
            per_subscription[parsed.subscription_ref] = per_subscription.get(parsed.subscription_ref, 0) + 1
    candidates = {parsed.fact.invoice_ref: row for row, parsed in ordered
                  if parsed is not None and isinstance(parsed.fact, ChargeSucceeded)
                  and per_subscription.get(parsed.subscription_ref) == 1}
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
    from memberships.services.rows import update_from_values

    update_from_values(
        InboundEvent, [(r.pk, r.status, r.error, r.attempts, r.processed_at, r.next_attempt_at, r.practice_id)
                       for r in rows],
        set_sql="status = v.status, error = v.error, attempts = v.attempts, processed_at = v.processed_at, "
                "next_attempt_at = v.next_attempt_at, practice_id = v.practice_id",
        columns=[("status", "text"), ("error", "text"), ("attempts", "integer"), ("processed_at", "timestamptz"),
                 ("next_attempt_at", "timestamptz"), ("practice_id", "bigint")])


def _is_lock_conflict(exc: Exception) -> bool:
    """A deadlock or lock timeout the database broke (another worker held what this event needed):
    not the event's fault — it waits a moment and is applied again."""
    cause = getattr(exc, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "diag", None), "sqlstate", None)
    return isinstance(exc, OperationalError) and (sqlstate in ("40P01", "40001", "55P03")
                                                  or "database is locked" in str(exc))


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
        _wait(row, f"waiting: {exc}", now=now)
    except Exception as exc:  # a bug or bad data: this row fails, visibly; the batch goes on
        if _is_lock_conflict(exc):
            _wait(row, "waiting: another worker held this membership", now=now, soon=True)
            return
        log_failure(logger, "inbound event %s (%s, %s) failed", row.pk, row.source, row.event_type, exc=exc)
        row.status, row.error = InboundStatus.FAILED, error_text(exc)
        row.processed_at, row.next_attempt_at = now, None


def _wait(row: InboundEvent, error: str, *, now: datetime, soon: bool = False) -> None:
    row.error = error[:2000]
    if row.attempts >= settings.INBOX_MAX_ATTEMPTS:
        row.status, row.processed_at = InboundStatus.FAILED, now
    else:
        row.status = InboundStatus.RECEIVED
        row.next_attempt_at = now + (timedelta(seconds=random.uniform(0.1, 1.0)) if soon
                                     else retry_delay(row.attempts))


def _complete(row: InboundEvent, parsed: "_Parsed | None"):
    """The row's fact, with the processor's reads it needs (a failure without its decline code)."""
    if row.source != SOURCE_STRIPE:
        return IgnoredEvent(f"no parser for source {row.source}")
    from .processors import stripe as stripe_adapter

    if parsed is None or parsed.envelope is None:
        return stripe_adapter.read_event(row.payload).fact      # raises what is wrong with it
    if parsed.completed:
        return parsed.fact
    return stripe_adapter.complete_event(row.payload, parsed.envelope).fact


def _mark_failed(inbound_id: int, *, exc: Exception, now: datetime) -> str | None:
    with transaction.atomic():
        updated = InboundEvent.objects.filter(pk=inbound_id, status=InboundStatus.RECEIVED).update(
            status=InboundStatus.FAILED, error=error_text(exc), attempts=F("attempts") + 1, processed_at=now,
            next_attempt_at=None)
    return InboundStatus.FAILED if updated else None


def reprocess(row: InboundEvent, *, now: datetime) -> str | None:
    """A manager's re-process of a failed (or any) event: back to received and processed now.
    Idempotent services make it safe for an event that was applied already."""
    InboundEvent.objects.filter(pk=row.pk).update(status=InboundStatus.RECEIVED, next_attempt_at=None)
    return process_inbound(row.pk, now=now, force=True)
