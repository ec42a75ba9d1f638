"""The second pass of an import, the writing: the planned rows go to the ledger a chunk per
transaction, with progress. Each chunk holds the practice's member-number lock and matches its rows
again (a twin import of the same sheet may have written them meanwhile); rows without a member the
ledger has get the sheet's member number or the practice's next ones. Every ledger write is
idempotent on a key derived from the practice and that number, so importing the same file again
changes nothing and an import stopped half way finishes by running it again.

What an import writes: new members with their membership (enrolled, then activated as imported:
no processor charge; started on the sheet's join date), opening balances as ledger entries with
source `import`, and the sheet view per member — set-based, one statement per table and chunk. For a
member the ledger already has, it updates contact details and the sheet view only: from then on the
ledger is authoritative, and differences show up in reconciliation.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.db import transaction

from billing.models import ImportBatch, SheetRow
from memberships import services as ledger
from memberships.models import BillingInterval, Member, Membership, MembershipStatus, Practice, Service, Tier
from memberships.services.bulk_rows import among, insert_rows
from memberships.services.imports import MemberRef
from memberships.services.members import MemberIndex, allocate_member_numbers, lock_member_numbers

from .checking import ImportCheck, ProgressCallback, person_of
from .rows import CONTACT_FIELDS, ImportRow, practice_catalog

CHUNK = 2000


def _add_interval(day: date, interval: str, n: int) -> date:
    if interval == BillingInterval.YEAR:
        year = day.year + n
        return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))
    months = day.month - 1 + n
    year, month = day.year + months // 12, months % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def current_period(*, start: date, period_end: date | None, interval: str, today: date) -> tuple[date, date]:
    """The period the member has paid for: from the sheet's period end if it has one, else the
    anniversary of the start date on or before today."""
    if period_end:
        return _add_interval(period_end, interval, -1), period_end
    if interval == BillingInterval.YEAR:
        n = today.year - start.year
    else:
        n = (today.year - start.year) * 12 + today.month - start.month
    n = max(n, 0)
    while n > 0 and _add_interval(start, interval, n) > today:      # this month's anniversary is still ahead
        n -= 1
    return _add_interval(start, interval, n), _add_interval(start, interval, n + 1)


def _key(practice: Practice, member_number: str) -> str:
    return f"import:{practice.pk}:{member_number}"[:150]


_MEMBER_FIELDS = ("practice", "member_number", "first_name", "last_name", "search_name", "email", "phone",
                  "sms_consent", "sms_consent_at", "record_patient_id", "processor_customer_id", "date_of_birth")


def _new_member(practice: Practice, row: ImportRow, now: datetime) -> tuple:
    return (practice.pk, row.member_number, row.first_name, row.last_name,
            f"{row.first_name} {row.last_name}".lower().strip(), row.email, row.phone, bool(row.sms_consent),
            now if row.sms_consent else None, row.record_patient_id, row.processor_customer_id, row.date_of_birth)


def _update_member(member: Member, row: ImportRow, now: datetime) -> set[str]:
    """The sheet's contact details on a member the ledger has (in memory); the fields changed."""
    changed = {name for name in CONTACT_FIELDS if getattr(row, name) and getattr(row, name) != getattr(member, name)}
    for name in changed:
        setattr(member, name, getattr(row, name))
    if row.sms_consent is not None and row.sms_consent != member.sms_consent:
        member.sms_consent = row.sms_consent
        member.sms_consent_at = now if row.sms_consent else None
        changed |= {"sms_consent", "sms_consent_at"}
    if changed & {"first_name", "last_name"}:
        member.search_name = f"{member.first_name} {member.last_name}".lower().strip()
        changed.add("search_name")
    return changed


def _save_contacts(updates: list[tuple[Member, set[str]]]) -> None:
    """The changed members saved together: one UPDATE per set of changed fields."""
    by_fields: dict[tuple[str, ...], list[Member]] = {}
    for member, changed in updates:
        if changed:
            by_fields.setdefault(tuple(sorted(changed)), []).append(member)
    for fields, members in by_fields.items():
        Member.objects.bulk_update(members, list(fields))


def _members_of(practice: Practice, rows: list[ImportRow], known: list[int], now: datetime) -> dict[int, Member]:
    """Row line → its member: those the ledger has (matched again here, under the practice's
    member-number lock, so a twin import running at the same time is seen), updated; the others
    created with the sheet's member number or the practice's next ones. Sets each row's number."""
    lock_member_numbers(practice)
    index = MemberIndex.of_people(practice, [person_of(row) for row in rows], member_ids=known)
    matched = {row.line: index.match(person_of(row)) for row in rows}
    existing = Member.objects.in_bulk([pk for pk in matched.values() if pk is not None])
    new_rows = [row for row in rows if matched[row.line] is None]
    numbers = iter(allocate_member_numbers(practice=practice, count=sum(1 for r in new_rows if not r.member_number)))
    updates = []
    for row in rows:
        if matched[row.line] is not None:
            member = existing[matched[row.line]]
            row.member_number = member.member_number
            updates.append((member, _update_member(member, row, now)))
        elif not row.member_number:
            row.member_number = next(numbers)
    _save_contacts(updates)
    created = insert_rows(Member, _MEMBER_FIELDS, (_new_member(practice, row, now) for row in new_rows))
    by_line = {line: existing[pk] for line, pk in matched.items() if pk is not None}
    by_line.update({row.line: MemberRef(pk=pk, practice_id=practice.pk) for row, pk in zip(new_rows, created)})
    return by_line


def _apply_chunk(*, practice: Practice, rows: list[ImportRow], known: list[int], batch: ImportBatch,
                 tiers: dict[str, Tier], services: dict[str, Service], now: datetime) -> None:
    members = _members_of(practice, rows, known, now)
    with_membership = set(Membership.objects.filter(among("member_id", [m.pk for m in members.values()]))
                          .values_list("member_id", flat=True))
    zone = ZoneInfo(practice.timezone)
    today = now.astimezone(zone).date()
    items = []
    for row in rows:
        member = members[row.line]
        if member.pk in with_membership:
            continue
        tier = tiers[row.tier_code]
        # A member who cancelled on a date paid for the period that date fell in, not today's: frozen
        # credit usable until the period end is not usable for a period they never paid.
        as_of = (min(today, row.cancelled_on) if row.cancelled_on and row.status == MembershipStatus.CANCELLED
                 else today)
        start, end = current_period(start=row.start_date, period_end=row.period_end, interval=tier.interval,
                                    today=as_of)
        items.append(ledger.ImportedMembership(
            member=member, tier=tier, status=row.status, processor_subscription_id=row.processor_subscription_id,
            current_period_start=datetime.combine(start, time(), zone),
            current_period_end=datetime.combine(end, time(), zone),
            opening=tuple((services[code], quantity) for code, quantity in sorted(row.balances.items())),
            key=_key(practice, row.member_number), paused_until=row.paused_until,
            started_at=datetime.combine(row.start_date, time(), zone),
            # Cancelled, the sheet saying neither when nor what was paid for: nothing more is usable.
            paid_through=now if row.status == MembershipStatus.CANCELLED and not (row.cancelled_on or row.period_end)
            else None,
        ))
    ledger.import_memberships(items=items, actor=ledger.Actor.importer(label=f"import {batch.pk}"), now=now)
    _write_sheet_rows(practice=practice, rows=rows, members=members, batch=batch, now=now)


_SHEET_FIELDS = ("member", "batch", "line", "tier_code", "status", "price_cents", "balances", "processor_customer_id",
                 "processor_subscription_id", "record_patient_id", "row_hash", "imported_at")


def _write_sheet_rows(*, practice: Practice, rows: list[ImportRow], members: dict[int, Member], batch: ImportBatch,
                      now: datetime) -> None:
    """The sheet's view of each member: inserted for members new to it, replaced for the others."""
    def values(row: ImportRow) -> tuple:
        return (members[row.line].pk, batch.pk, row.line, row.tier_code, row.status, row.price_cents, row.balances,
                row.processor_customer_id, row.processor_subscription_id, row.record_patient_id, row.row_hash(), now)

    known = set(SheetRow.objects.filter(among("member_number", [r.member_number for r in rows]), practice=practice)
                .values_list("member_number", flat=True))
    insert_rows(SheetRow, ("practice", "member_number", *_SHEET_FIELDS),
                ((practice.pk, row.member_number, *values(row)) for row in rows if row.member_number not in known))
    SheetRow.objects.bulk_create(
        [SheetRow(practice=practice, member_number=row.member_number,
                  **{f"{name}_id" if name in ("member", "batch") else name: value
                     for name, value in zip(_SHEET_FIELDS, values(row))})
         for row in rows if row.member_number in known],
        update_conflicts=True, unique_fields=["practice", "member_number"], update_fields=list(_SHEET_FIELDS))


def apply_import(*, practice: Practice, check: ImportCheck, batch: ImportBatch, now: datetime,
                 on_progress: ProgressCallback | None = None) -> None:
    """Write the planned rows, a chunk per transaction. Every write is idempotent on the practice
    and member number, so an import stopped half way finishes by running it again."""
    tiers, _, services = practice_catalog(practice)
    tiers = {t.code: t for t in tiers.values()}
    todo = [p for p in check.planned if p.action != "unchanged"]
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        with transaction.atomic():
            _apply_chunk(practice=practice, rows=[p.row for p in chunk], batch=batch, tiers=tiers,
                         known=[p.member_id for p in chunk if p.member_id is not None], services=services, now=now)
        if on_progress:
            on_progress("import", min(start + CHUNK, len(todo)), len(todo))
