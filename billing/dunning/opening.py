"""Opening dunning cases: the one failure a webhook reports (`cases.open_case_for_failure`) and the
many a sweep finds (`sweep.open_new_cases`) go through `open_cases`, so there is one set of rules.

For every failure whose membership dunning applies to and whose invoice has no case yet: the case
(the practice's current policy version), its planned steps, the opening on the timeline (and, when
no message can reach the member, a line asking staff to call), the chart flag, the outbox rows of
those events — one statement per table, whatever the number of cases — and the membership marked
past due when asked (one at a time: a failure the processor reported has done it already).

Safe in several workers at once: the memberships are locked first (in id order), the invoices that
have a case are read again under those locks, and the insert of the cases skips an invoice that
has one (`ON CONFLICT DO NOTHING`), so a case is never opened twice; an invoice paid or voided
since the failure was read (the paid webhook landing between a sweep's read and its locks) opens
nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from billing.models import DunningCase, DunningCaseStatus, DunningPolicy, Invoice, InvoiceStatus
from memberships import services as ledger
from memberships.display import format_money
from memberships.models import ChartFlag, Event, EventKind, Membership, MembershipStatus
from memberships.services import sql
from memberships.services.common import record_events
from memberships.services.flags import flagged_event

from .cases import SYSTEM, case_event, lock_case, stop_retries
from .declines import is_hard_decline
from .policy import current_policy, planned_steps

logger = logging.getLogger(__name__)

OPENABLE = (MembershipStatus.ACTIVE, MembershipStatus.PENDING, MembershipStatus.PAST_DUE, MembershipStatus.LAPSED)


@dataclass(frozen=True)
class Failure:
    """A failed charge of an invoice, as dunning needs it."""

    membership_id: int
    invoice_ref: str
    amount_cents: int
    currency: str
    decline_code: str
    hard: bool
    failed_at: datetime
    mark_past_due: bool = True


def failure(*, membership_id: int, invoice_ref: str, amount_cents: int, currency: str = "usd",
            decline_code: str = "", hard: bool | None = None, failed_at: datetime,
            mark_past_due: bool = True) -> Failure:
    """A checked Failure: raises ValueError for a missing invoice or an amount that is not whole cents."""
    if not invoice_ref:
        raise ValueError("invoice_ref is required")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 0:
        raise ValueError("amount_cents must be a whole number of cents, at least 0")
    return Failure(membership_id=membership_id, invoice_ref=invoice_ref, amount_cents=amount_cents,
                   currency=(currency or "usd").lower(), decline_code=decline_code or "",
                   hard=is_hard_decline(decline_code) if hard is None else bool(hard), failed_at=failed_at,
                   mark_past_due=mark_past_due)


def failure_of_invoice(invoice, *, mark_past_due: bool, now: datetime) -> Failure:
    """The failure an invoice mirror records (its last attempt's codes; hard if the processor said so
    or a code is a hard decline)."""
    return failure(
        membership_id=invoice.membership_id, invoice_ref=invoice.processor_invoice_id,
        amount_cents=invoice.amount_cents, currency=invoice.currency,
        decline_code=invoice.last_decline_code or invoice.last_failure_code or "",
        hard=invoice.hard_decline or is_hard_decline(invoice.last_decline_code, invoice.last_failure_code),
        failed_at=invoice.failed_at or now, mark_past_due=mark_past_due,
    )


def open_case_for_failure(*, membership: Membership, invoice_ref: str, amount_cents: int, currency: str = "usd",
                          decline_code: str = "", hard: bool | None = None, now: datetime,
                          failed_at: datetime | None = None, mark_past_due: bool = True) -> DunningCase | None:
    """Open the invoice's dunning case, or fold a repeated / late failure webhook into it.

    One case per (practice, invoice) whatever the number and order of failure webhooks; a failure
    for an already closed case changes nothing. Returns None when the membership is not one that
    dunning applies to (cancelled or paused)."""
    item = failure(membership_id=membership.pk, invoice_ref=invoice_ref, amount_cents=amount_cents, currency=currency,
                   decline_code=decline_code, hard=hard, failed_at=failed_at or now, mark_past_due=mark_past_due)
    practice_id = membership.member.practice_id
    with transaction.atomic():
        existing = _case_id(practice_id, invoice_ref)
        if existing is None:
            opened = open_cases([item], now=now)
            if opened:
                return opened[0]
            existing = _case_id(practice_id, invoice_ref)  # a twin opened it meanwhile, or none may be
            if existing is None:
                return None
        return _fold_failure(existing, decline_code=item.decline_code, hard=item.hard, failed_at=item.failed_at,
                             now=now)


def _case_id(practice_id: int, invoice_ref: str) -> int | None:
    return DunningCase.objects.filter(practice_id=practice_id, invoice_ref=invoice_ref).values_list(
        "pk", flat=True).first()


def _fold_failure(case_id: int, *, decline_code: str, hard: bool, failed_at: datetime, now: datetime) -> DunningCase:
    """Another failure of the invoice: counted; the newest failure's code kept; a hard decline stops
    the retries of an open case."""
    case = lock_case(case_id)
    case.failure_count += 1
    fields = ["failure_count"]
    if failed_at >= case.last_failure_at:
        case.last_failure_at = failed_at
        fields.append("last_failure_at")
        if decline_code and not case.hard:
            case.decline_code = decline_code
            fields.append("decline_code")
    case.save(update_fields=fields)
    if case.status == DunningCaseStatus.OPEN and hard and not case.hard:
        stop_retries(case, decline_code=decline_code, now=now)
    return case


def open_cases(failures: list[Failure], *, now: datetime, skip_locked: bool = False) -> list[DunningCase]:
    """Open the cases of `failures` (see the module's docstring); returns the cases opened, in the
    order of `failures`. A failure opens nothing when its invoice has a case already, when its
    membership is not one dunning applies to (cancelled, paused), or, with `skip_locked`, when
    another transaction holds its membership (the next run takes it)."""
    if not failures:
        return []
    with transaction.atomic():
        memberships = _lock_memberships(sorted({f.membership_id for f in failures}), skip_locked=skip_locked)
        wanted: dict[tuple[int, str], tuple[Failure, Membership]] = {}
        for item in failures:
            membership = memberships.get(item.membership_id)
            if membership is None or membership.status not in OPENABLE:
                if membership is not None:
                    logger.info("no dunning case for membership %s (status %s)", membership.pk, membership.status)
                continue
            wanted.setdefault((membership.member.practice_id, item.invoice_ref), (item, membership))
        for key in _with_case(list(wanted)) | _settled(list(wanted)):
            del wanted[key]
        if not wanted:
            return []
        policies: dict[int, DunningPolicy] = {}
        for _, membership in wanted.values():
            practice = membership.member.practice
            if practice.pk not in policies:
                policies[practice.pk] = current_policy(practice=practice, now=now)
        cases = [_new_case(item, membership, policies[key[0]], now=now) for key, (item, membership) in wanted.items()]
        opened = _insert_cases(cases)
        _write_opening(opened, now=now)
        for case in opened:
            item, membership = wanted[(case.practice_id, case.invoice_ref)]
            if item.mark_past_due and membership.status in (MembershipStatus.ACTIVE, MembershipStatus.PENDING):
                ledger.mark_past_due(membership=membership, actor=SYSTEM, now=now, invoice_ref=case.invoice_ref,
                                     idempotency_key=f"dunning:past-due:{case.pk}")
        return opened


def _lock_memberships(ids: list[int], *, skip_locked: bool) -> dict[int, Membership]:
    rows = (Membership.objects.select_for_update(of=("self",), skip_locked=skip_locked)
            .select_related("member__practice", "member__home_location").filter(pk__in=ids).order_by("pk"))
    return {m.pk: m for m in rows}


def _with_case(keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    """The (practice, invoice) pairs among `keys` that have a case (read under the memberships' locks)."""
    found: set[tuple[int, str]] = set()
    by_practice: dict[int, list[str]] = {}
    for practice_id, ref in keys:
        by_practice.setdefault(practice_id, []).append(ref)
    for practice_id, refs in by_practice.items():
        found |= set(DunningCase.objects.filter(practice_id=practice_id, invoice_ref__in=refs)
                     .values_list("practice_id", "invoice_ref"))
    return found


def _settled(keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    """The (practice, invoice) pairs among `keys` whose invoice was paid, voided or written off since the
    failure was read (a sweep's read, then the webhook before its locks): nothing is owed, nothing chased."""
    found: set[tuple[int, str]] = set()
    by_practice: dict[int, list[str]] = {}
    for practice_id, ref in keys:
        by_practice.setdefault(practice_id, []).append(ref)
    for practice_id, refs in by_practice.items():
        found |= set(Invoice.objects.filter(practice_id=practice_id, processor_invoice_id__in=refs,
                                            status__in=(InvoiceStatus.PAID, InvoiceStatus.VOID,
                                                        InvoiceStatus.UNCOLLECTIBLE))
                     .values_list("practice_id", "processor_invoice_id"))
    return found


def _new_case(item: Failure, membership: Membership, policy: DunningPolicy, *, now: datetime) -> DunningCase:
    case = DunningCase(
        practice_id=membership.member.practice_id, member=membership.member, membership=membership, policy=policy,
        invoice_ref=item.invoice_ref, amount_cents=item.amount_cents, currency=item.currency,
        decline_code=item.decline_code, hard=item.hard, last_failure_at=item.failed_at, opened_at=now,
    )
    case.practice = membership.member.practice
    case.planned = planned_steps(case, policy)
    case.next_action_at = min(step.due_at for step in case.planned)
    return case


def _insert_cases(cases: list[DunningCase]) -> list[DunningCase]:
    """INSERT the cases in one statement, skipping any invoice that has a case by now; returns those
    written, with their ids."""
    q = connection.ops.quote_name
    meta = DunningCase._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    statement = (f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
                 f"VALUES {', '.join([row] * len(cases))} "
                 f"ON CONFLICT ({q('practice_id')}, {q('invoice_ref')}) DO NOTHING "
                 f"RETURNING {q('id')}, {q('practice_id')}, {q('invoice_ref')}")
    params = [f.get_db_prep_save(f.pre_save(case, True), connection) for case in cases for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        ids = {(practice_id, ref): pk for pk, practice_id, ref in cursor.fetchall()}
    opened = []
    for case in cases:
        pk = ids.get((case.practice_id, case.invoice_ref))
        if pk is None:
            continue
        case.pk = pk
        case._state.adding, case._state.db = False, connection.alias
        opened.append(case)
    return opened


def opened_summary(case: DunningCase) -> str:
    reason = case.decline_code.replace("_", " ") if case.decline_code else "no reason given"
    return (f"Charge of {format_money(case.amount_cents, case.currency)} declined ({reason})"
            + ("; the card cannot be retried, a new card is needed" if case.hard else "")
            + f"; payment follow-up started (policy v{case.policy.version})")


def _write_opening(cases: list[DunningCase], *, now: datetime) -> None:
    """The opened cases' steps, chart flags, timeline events and (through the events) outbox rows."""
    steps = []
    for case in cases:
        for step in case.planned:
            step.case = case                           # its id, now that the case has one
            steps.append(step)
    sql.insert_many(steps)
    flags = [ChartFlag(practice_id=case.practice_id, member=case.member, membership=case.membership, source="dunning",
                       source_ref=case.flag_ref, text=case.policy.flag_text[:200], opened_at=now) for case in cases]
    sql.insert_many(flags)
    events: list[Event] = []
    for case, flag in zip(cases, flags):
        policy = case.policy
        events.append(case_event(case, kind=EventKind.DUNNING_OPENED, now=now, summary=opened_summary(case),
                                 payload={"policy_id": policy.pk, "policy_version": policy.version,
                                          "amount_cents": case.amount_cents, "currency": case.currency,
                                          "decline_code": case.decline_code, "hard": case.hard}))
        if not case.member.email and not case.member.can_receive_sms:
            events.append(case_event(case, kind=EventKind.DUNNING, now=now,
                                     summary="No message can reach this member (no SMS consent, no email): call them",
                                     payload={"unreachable": True}))
        events.append(flagged_event(flag, reason="card_declined", actor=SYSTEM, now=now))
    record_events(events)
