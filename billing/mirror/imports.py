"""Importing a practice's membership spreadsheet into the ledger.

Two passes. The check reads every row, parses and validates it, and plans what it would do
(create, change, leave unchanged, reject) without writing to the ledger. The import runs only when
the whole file is valid (or the manager chose to import only the valid rows), in chunks with
progress, and every ledger write is idempotent on a key derived from the practice and the member
number: importing the same file again changes nothing.

What an import writes: new members with their membership (enrolled, then activated as imported:
no processor charge), opening balances as ledger entries with source `import`, and the sheet view
per member. For a member the ledger already has, it updates contact details and the sheet view
only: from then on the ledger is authoritative, and differences show up in reconciliation.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from typing import Any, Callable
from zoneinfo import ZoneInfo

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from billing.models import ImportBatch, ImportStatus, SheetRow
from memberships import services as ledger
from memberships.models import (
    BillingInterval,
    Member,
    Membership,
    MembershipStatus,
    Practice,
    Service,
    ServiceKind,
    Tier,
)

from .sheet import (
    BALANCE_PREFIX,
    DATE_FIELDS,
    DATE_ORDERS,
    FIELD_LABELS,
    FIELD_SYNONYMS,
    UNSAVED_FORMULA,
    DateOrder,
    Mapping,
    ServiceRef,
    SheetError,
    UnsavedFormula,
    ValueProblem,
    decide_date_order,
    guess_mapping,
    normalize_header,
    parse_bool,
    parse_cents,
    parse_date,
    parse_status,
    parse_units,
    read_sheet,
    text,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
CHUNK = 500
MAX_STORED_ACTIONS = 2000
KNOWN_FIELDS = set(FIELD_SYNONYMS)



# The ledger's column widths: a longer value is a row error, never a failed batch.
_MAX_LENGTH = {
    "member_number": Member._meta.get_field("member_number").max_length,
    "first_name": Member._meta.get_field("first_name").max_length,
    "last_name": Member._meta.get_field("last_name").max_length,
    "full_name": Member._meta.get_field("first_name").max_length + Member._meta.get_field("last_name").max_length,
    "email": Member._meta.get_field("email").max_length,
    "record_patient_id": Member._meta.get_field("record_patient_id").max_length,
    "processor_customer_id": Member._meta.get_field("processor_customer_id").max_length,
    "processor_subscription_id": Membership._meta.get_field("processor_subscription_id").max_length,
}

@dataclass
class RowError:
    line: int
    column: str
    message: str


@dataclass
class ImportRow:
    line: int
    member_number: str
    first_name: str
    last_name: str
    email: str
    phone: str
    tier_code: str
    status: str
    start_date: date
    paused_until: date | None      # only for a paused membership, which must have one
    period_end: date | None
    price_cents: int | None
    balances: dict[str, int]
    processor_customer_id: str
    processor_subscription_id: str
    record_patient_id: str
    sms_consent: bool | None

    def row_hash(self) -> str:
        data = asdict(self)
        data.pop("line")
        if data["paused_until"] is None:
            data.pop("paused_until")        # rows hashed before the column existed stay unchanged
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class PlannedRow:
    line: int
    member_number: str
    action: str          # create | change | unchanged
    detail: str
    row: ImportRow = field(repr=False)


@dataclass
class ImportCheck:
    """The dry run: what the file holds and what importing it would do."""

    total_rows: int = 0
    mapping: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    column_notes: dict[str, str] = field(default_factory=dict)   # header → how it is read, or why not
    date_order: str = ""                                         # the import's order for ambiguous dates
    errors: list[RowError] = field(default_factory=list)
    planned: list[PlannedRow] = field(default_factory=list)

    @property
    def rejected_lines(self) -> set[int]:
        return {e.line for e in self.errors}

    def count(self, action: str) -> int:
        return sum(1 for p in self.planned if p.action == action)


# --- the check ------------------------------------------------------------------------------------

def _catalog(practice: Practice) -> tuple[dict[str, Tier], list[ServiceRef], dict[str, Service]]:
    tiers: dict[str, Tier] = {}
    for tier in Tier.objects.filter(practice=practice, active=True).order_by("code", "version"):
        for key in (normalize_header(tier.code), normalize_header(tier.name)):
            tiers[key] = tier       # the latest version wins
    services = {s.code: s for s in Service.objects.filter(practice=practice, active=True)}
    refs = [ServiceRef(code=s.code, name=s.name, is_credit=s.kind == ServiceKind.CREDIT) for s in services.values()]
    return tiers, refs, services


def _phone(value: Any) -> str:
    raw = text(value)
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, settings.IMPORT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise ValueProblem(f"'{raw}' is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueProblem(f"'{raw}' is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(value: Any) -> str:
    raw = text(value).lower()
    if not raw:
        return ""
    try:
        validate_email(raw)
    except ValidationError:
        raise ValueProblem(f"'{text(value)}' is not an email address") from None
    return raw


def _parse_row(*, line: int, cells: list[Any], headers: list[str], mapping: Mapping, tiers: dict[str, Tier],
               services: dict[str, Service], date_orders: dict[str, DateOrder],
               date_order: str) -> tuple[ImportRow | None, list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, Any] = {}

    def cell(name: str) -> tuple[Any, str]:
        index = mapping.index_of(name)
        if index is None:
            return None, FIELD_LABELS.get(name, name)
        return (cells[index] if index < len(cells) else None), headers[index]

    def parse_cell(raw: Any, parse: Callable[[Any], Any]) -> Any:
        if isinstance(raw, UnsavedFormula):
            raise ValueProblem(UNSAVED_FORMULA)
        return parse(raw)

    def dates(name: str) -> Callable[[Any], Any]:
        decision = date_orders.get(name)

        def parse(raw: Any) -> date | None:
            if decision and line in decision.conflicts:
                raise ValueProblem(decision.conflicts[line])
            return parse_date(raw, order=decision.order if decision else date_order)
        return parse

    def take(name: str, parse: Callable[[Any], Any], required: bool = False) -> Any:
        raw, column = cell(name)
        try:
            value = parse_cell(raw, parse)
        except ValueProblem as problem:
            errors.append(RowError(line, column, str(problem)))
            return None
        if required and value in (None, ""):
            errors.append(RowError(line, column, "is empty"))
        limit = _MAX_LENGTH.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            errors.append(RowError(line, column, f"is longer than {limit} characters"))
            return None
        return value

    values["member_number"] = take("member_number", text, required=True)
    first = take("first_name", text)
    last = take("last_name", text)
    if mapping.index_of("full_name") is not None and not (first or last):
        full = take("full_name", text)
        if "," in (full or ""):
            last, _, first = (part.strip() for part in full.partition(","))
        else:
            first, _, last = (full or "").rpartition(" ") if " " in (full or "") else (full, "", "")
            first, last = (first or "").strip(), (last or "").strip()
    if not first and not last:
        errors.append(RowError(line, cell("first_name")[1], "no name"))
    for name, part in (("first_name", first), ("last_name", last)):
        if len(part or "") > _MAX_LENGTH[name]:
            errors.append(RowError(line, cell(name)[1] or cell("full_name")[1],
                                   f"{name.replace('_', ' ')} is longer than {_MAX_LENGTH[name]} characters"))
            first, last = (None, last) if name == "first_name" else (first, None)
    values["first_name"], values["last_name"] = first or "", last or ""
    values["email"] = take("email", _email)
    values["phone"] = take("phone", _phone)
    tier_raw, tier_column = cell("tier")
    tier = None if isinstance(tier_raw, UnsavedFormula) else tiers.get(normalize_header(tier_raw))
    if isinstance(tier_raw, UnsavedFormula):
        errors.append(RowError(line, tier_column, UNSAVED_FORMULA))
    elif not text(tier_raw):
        errors.append(RowError(line, tier_column, "no tier"))
    elif tier is None:
        names = ", ".join(sorted({t.name for t in tiers.values()})) or "none defined"
        errors.append(RowError(line, tier_column, f"unknown tier '{text(tier_raw)}' (tiers: {names})"))
    values["tier_code"] = tier.code if tier else ""
    values["status"] = take("status", parse_status)
    values["start_date"] = take("start_date", dates("start_date"), required=True)
    values["period_end"] = take("period_end", dates("period_end"))
    # Only a paused membership has an end to its pause (whether it needs one: `_pause_end_problem`).
    values["paused_until"] = (take("paused_until", dates("paused_until"))
                              if values["status"] == MembershipStatus.PAUSED else None)
    values["price_cents"] = take("price", parse_cents)
    balances: dict[str, int] = {}
    for index, name in mapping.columns.items():
        if not name.startswith(BALANCE_PREFIX):
            continue
        code = name[len(BALANCE_PREFIX):]
        service = services[code]
        raw = cells[index] if index < len(cells) else None
        try:
            quantity = parse_cell(raw, parse_cents if service.kind == ServiceKind.CREDIT else parse_units)
        except ValueProblem as problem:
            errors.append(RowError(line, headers[index], str(problem)))
            continue
        if quantity:
            balances[code] = quantity
    values["balances"] = balances
    values["processor_customer_id"] = take("processor_customer_id", text)
    values["processor_subscription_id"] = take("processor_subscription_id", text)
    values["record_patient_id"] = take("record_patient_id", text)
    values["sms_consent"] = take("sms_consent", parse_bool)
    if errors:
        return None, errors
    return ImportRow(line=line, **values), []


def _pause_end_problem(row: ImportRow, *, column: str, today: date) -> RowError | None:
    """A membership imported as paused resumes on its end date (the hourly job, or the first charge
    after it): without one it would stay paused for ever, so the date is required, after today.
    Checked for the rows that bring a membership in; for a member the ledger already has, the
    spreadsheet's pause is only its view."""
    if row.status != MembershipStatus.PAUSED:
        return None
    if row.paused_until is None:
        return RowError(row.line, column, f"a paused membership needs the date its pause ends: fill in the "
                                          f"'{column}' column (or mark the member active)")
    if row.paused_until <= today:
        return RowError(row.line, column, f"the pause ended on {row.paused_until:%Y-%m-%d}: give a date after "
                                          f"today, or mark the member active")
    return None


def _describe_new(row: ImportRow, tiers_by_code: dict[str, Tier], services: dict[str, Service]) -> str:
    tier = tiers_by_code[row.tier_code]
    status = row.status.replace("_", " ") + (f" until {row.paused_until:%Y-%m-%d}" if row.paused_until else "")
    parts = [f"{row.first_name} {row.last_name}".strip(), f"{tier.name}, {status}", f"since {row.start_date:%Y-%m-%d}"]
    if row.balances:
        parts.append("opening balance " + ", ".join(
            f"{services[code].format_quantity(q)} {services[code].name}" for code, q in sorted(row.balances.items())))
    return "; ".join(parts)


CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "record_patient_id", "processor_customer_id")


def _contact_changes(member: Member, row: ImportRow) -> list[str]:
    changes = [name.replace("_", " ") for name in CONTACT_FIELDS
               if getattr(row, name) and getattr(row, name) != getattr(member, name)]
    if row.sms_consent is not None and row.sms_consent != member.sms_consent:
        changes.append("sms consent")
    return changes


def check_import(*, practice: Practice, content: bytes, file_name: str, now: datetime,
                 mapping_override: dict[str, str] | None = None, date_order: str = "",
                 on_progress: ProgressCallback | None = None) -> ImportCheck:
    """Read, validate and plan; writes nothing. `date_order` ("mdy" or "dmy", the setting
    IMPORT_DATE_ORDER when empty) reads a column whose 03/04/2026 dates could be either way."""
    date_order = date_order or settings.IMPORT_DATE_ORDER
    check = ImportCheck(date_order=date_order)
    try:
        sheet = read_sheet(content=content, file_name=file_name)
    except SheetError as exc:
        check.errors.append(RowError(0, "", str(exc)))
        return check
    tiers, refs, services = _catalog(practice)
    tiers_by_code = {t.code: t for t in tiers.values()}
    mapping = guess_mapping(headers=sheet.headers, services=refs, override=mapping_override)
    check.total_rows = len(sheet.rows)
    check.mapping = {sheet.headers[i]: f for i, f in sorted(mapping.columns.items())}
    check.ignored_columns = mapping.ignored
    check.column_notes = dict(mapping.notes)
    for problem in mapping.problems:
        check.errors.append(RowError(0, "", problem))
    unknown_targets = [f for f in mapping.columns.values()
                       if f not in KNOWN_FIELDS and not (f.startswith(BALANCE_PREFIX) and f[len(BALANCE_PREFIX):] in services)]
    for target in unknown_targets:
        check.errors.append(RowError(0, "", f"unknown field '{target}' in the column mapping"))
    present = set(mapping.columns.values())
    for required, label in (("member_number", "member number"), ("tier", "tier"), ("start_date", "start date")):
        if required not in present:
            examples = ", ".join(f"'{s.title()}'" for s in FIELD_SYNONYMS[required][:3])
            check.errors.append(RowError(0, "", f"no column for the {label} (headers such as {examples})"))
    if not ({"first_name", "last_name", "full_name"} & present):
        check.errors.append(RowError(0, "", "no column for the member's name ('First name'/'Last name' or 'Name')"))
    if check.errors:
        return check
    date_orders: dict[str, DateOrder] = {}
    for name in DATE_FIELDS:
        index = mapping.index_of(name)
        if index is None:
            continue
        decision = decide_date_order(((line, cells[index]) for line, cells in sheet.rows if index < len(cells)),
                                     default=date_order)
        if decision:
            date_orders[name] = decision
            check.column_notes[sheet.headers[index]] = decision.explain()
    today = practice.local_date(now)

    existing = {m.member_number: m for m in Member.objects.filter(practice=practice)}
    sheet_hashes = dict(SheetRow.objects.filter(practice=practice).values_list("member_number", "row_hash"))
    with_membership = set(Membership.objects.filter(member__practice=practice).values_list("member__member_number",
                                                                                           flat=True))
    seen_numbers: dict[str, int] = {}
    seen_people: dict[tuple[str, str, str], int] = {}
    number_column = sheet.headers[mapping.index_of("member_number")]
    pause_index = mapping.index_of("paused_until")
    pause_column = sheet.headers[pause_index] if pause_index is not None else FIELD_LABELS["paused_until"]
    parsed = [_parse_row(line=line, cells=cells, headers=sheet.headers, mapping=mapping, tiers=tiers,
                         services=services, date_orders=date_orders, date_order=date_order)
              for line, cells in sheet.rows]
    processor_ids = _ProcessorIds([row for row, _ in parsed if row is not None], mapping=mapping,
                                  headers=sheet.headers)
    for done, ((line, _cells), (row, errors)) in enumerate(zip(sheet.rows, parsed), start=1):
        if row is not None:
            errors.extend(processor_ids.check(row, member=existing.get(row.member_number)))
            first_line = seen_numbers.get(row.member_number.lower())
            person = (row.first_name.lower(), row.last_name.lower(), row.email)
            if first_line is not None:
                errors.append(RowError(line, number_column,
                                       f"duplicate member: {row.member_number} is already on line {first_line}"))
            elif row.email and person in seen_people:
                errors.append(RowError(line, number_column, f"duplicate member: the same name and email are "
                                                            f"already on line {seen_people[person]}"))
            else:
                seen_numbers[row.member_number.lower()] = line
                if row.email:
                    seen_people[person] = line
            if row.member_number not in with_membership:
                problem = _pause_end_problem(row, column=pause_column, today=today)
                if problem:
                    errors.append(problem)
        if errors:
            check.errors.extend(errors)
        else:
            member = existing.get(row.member_number)
            if member is None:
                check.planned.append(PlannedRow(line, row.member_number, "create",
                                                _describe_new(row, tiers_by_code, services), row))
            elif sheet_hashes.get(row.member_number) == row.row_hash() and row.member_number in with_membership \
                    and not _contact_changes(member, row):
                check.planned.append(PlannedRow(line, row.member_number, "unchanged", "", row))
            else:
                changes = _contact_changes(member, row)
                if row.member_number not in with_membership:
                    detail = "existing member; gets the membership " + _describe_new(row, tiers_by_code, services)
                else:
                    detail = ("updates " + ", ".join(changes) + "; " if changes else "") + \
                        "sheet view updated (ledger differences go to reconciliation)"
                check.planned.append(PlannedRow(line, row.member_number, "change", detail, row))
        if on_progress and (done % 500 == 0 or done == check.total_rows):
            on_progress("check", done, check.total_rows)
    return check


class _ProcessorIds:
    """A processor subscription or customer id names one member: a row whose id another member
    (in the ledger, of any practice, or on an earlier line) already has is refused, so a webhook
    never reaches the wrong member."""

    FIELDS = (("processor_subscription_id", "subscription"), ("processor_customer_id", "customer"))

    def __init__(self, rows: list[ImportRow], *, mapping: Mapping, headers: list[str]):
        subs = {r.processor_subscription_id for r in rows if r.processor_subscription_id}
        customers = {r.processor_customer_id for r in rows if r.processor_customer_id}
        self.owners: dict[str, dict[str, set[int]]] = {"processor_subscription_id": {}, "processor_customer_id": {}}
        for ref, member_id in Membership.objects.filter(processor_subscription_id__in=subs).values_list(
                "processor_subscription_id", "member_id"):
            self.owners["processor_subscription_id"].setdefault(ref, set()).add(member_id)
        for ref, member_id in Member.objects.filter(processor_customer_id__in=customers).values_list(
                "processor_customer_id", "pk"):
            self.owners["processor_customer_id"].setdefault(ref, set()).add(member_id)
        self.columns = {name: headers[mapping.index_of(name)] if mapping.index_of(name) is not None else ""
                        for name, _ in self.FIELDS}
        self.first_line: dict[tuple[str, str], tuple[int, str]] = {}

    def check(self, row: ImportRow, *, member: Member | None) -> list[RowError]:
        errors = []
        for name, label in self.FIELDS:
            ref = getattr(row, name)
            if not ref:
                continue
            others = self.owners[name].get(ref, set()) - ({member.pk} if member is not None else set())
            earlier = self.first_line.setdefault((name, ref), (row.line, row.member_number.lower()))
            if others:
                errors.append(RowError(row.line, self.columns[name],
                                       f"processor {label} id {ref} already belongs to another member"))
            elif earlier[1] != row.member_number.lower():
                errors.append(RowError(row.line, self.columns[name],
                                       f"processor {label} id {ref} is already on line {earlier[0]}"))
        return errors


# --- the import -------------------------------------------------------------------------------------

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
    n = 0
    while _add_interval(start, interval, n + 1) <= today:
        n += 1
    return _add_interval(start, interval, n), _add_interval(start, interval, n + 1)


def _key(practice: Practice, member_number: str) -> str:
    return f"import:{practice.pk}:{member_number}"[:150]


def _new_member(practice: Practice, row: ImportRow, now: datetime) -> Member:
    member = Member(
        practice=practice, member_number=row.member_number, first_name=row.first_name, last_name=row.last_name,
        email=row.email, phone=row.phone, sms_consent=bool(row.sms_consent),
        sms_consent_at=now if row.sms_consent else None, record_patient_id=row.record_patient_id,
        processor_customer_id=row.processor_customer_id,
    )
    member.search_name = f"{row.first_name} {row.last_name}".lower().strip()   # bulk_create skips save()
    return member


def _update_member(member: Member, row: ImportRow, now: datetime) -> None:
    changed = [name for name in CONTACT_FIELDS if getattr(row, name) and getattr(row, name) != getattr(member, name)]
    for name in changed:
        setattr(member, name, getattr(row, name))
    if row.sms_consent is not None and row.sms_consent != member.sms_consent:
        member.sms_consent = row.sms_consent
        member.sms_consent_at = now if row.sms_consent else None
        changed += ["sms_consent", "sms_consent_at"]
    if changed:
        member.save(update_fields=changed)


def _apply_chunk(*, practice: Practice, rows: list[ImportRow], batch: ImportBatch, tiers: dict[str, Tier],
                 services: dict[str, Service], now: datetime) -> None:
    numbers = [row.member_number for row in rows]
    members = {m.member_number: m for m in Member.objects.filter(practice=practice, member_number__in=numbers)}
    for row in rows:
        if row.member_number in members:
            _update_member(members[row.member_number], row, now)
    created = Member.objects.bulk_create([_new_member(practice, row, now) for row in rows
                                          if row.member_number not in members])
    members.update({m.member_number: m for m in created})
    with_membership = set(Membership.objects.filter(member__in=list(members.values()))
                          .values_list("member_id", flat=True))
    zone = ZoneInfo(practice.timezone)
    today = now.astimezone(zone).date()
    items = []
    for row in rows:
        member = members[row.member_number]
        if member.pk in with_membership:
            continue
        tier = tiers[row.tier_code]
        start, end = current_period(start=row.start_date, period_end=row.period_end, interval=tier.interval,
                                    today=today)
        items.append(ledger.ImportedMembership(
            member=member, tier=tier, status=row.status, processor_subscription_id=row.processor_subscription_id,
            current_period_start=datetime.combine(start, time(), zone),
            current_period_end=datetime.combine(end, time(), zone),
            opening=tuple((services[code], quantity) for code, quantity in sorted(row.balances.items())),
            key=_key(practice, row.member_number), paused_until=row.paused_until,
        ))
    ledger.import_memberships(items=items, actor=ledger.Actor.importer(label=f"import {batch.pk}"), now=now)
    SheetRow.objects.bulk_create(
        [SheetRow(practice=practice, member=members[row.member_number], member_number=row.member_number,
                  batch=batch, line=row.line, tier_code=row.tier_code, status=row.status,
                  price_cents=row.price_cents, balances=row.balances,
                  processor_customer_id=row.processor_customer_id,
                  processor_subscription_id=row.processor_subscription_id,
                  record_patient_id=row.record_patient_id, row_hash=row.row_hash(), imported_at=now)
         for row in rows],
        update_conflicts=True, unique_fields=["practice", "member_number"],
        update_fields=["member", "batch", "line", "tier_code", "status", "price_cents", "balances",
                       "processor_customer_id", "processor_subscription_id", "record_patient_id", "row_hash",
                       "imported_at"],
    )


def apply_import(*, practice: Practice, check: ImportCheck, batch: ImportBatch, now: datetime,
                 on_progress: ProgressCallback | None = None) -> None:
    """Write the planned rows, a chunk per transaction. Every write is idempotent on the practice
    and member number, so an import stopped half way finishes by running it again."""
    tiers, _, services = _catalog(practice)
    tiers = {t.code: t for t in tiers.values()}
    todo = [p.row for p in check.planned if p.action != "unchanged"]
    for start in range(0, len(todo), CHUNK):
        with transaction.atomic():
            _apply_chunk(practice=practice, rows=todo[start:start + CHUNK], batch=batch, tiers=tiers,
                         services=services, now=now)
        if on_progress:
            on_progress("import", min(start + CHUNK, len(todo)), len(todo))


# --- the batch (page and command share it) --------------------------------------------------------

def column_rows(report: dict) -> list[tuple[str, str, str]]:
    """A batch's columns: (header, field or "" when ignored, how it is read or why it is not)."""
    notes = report.get("column_notes", {})
    return ([(header, field, notes.get(header, "")) for header, field in report.get("mapping", {}).items()]
            + [(header, "", notes.get(header, "")) for header in report.get("ignored_columns", [])])


def create_import_batch(*, practice: Practice, file_name: str, content: bytes, dry_run: bool,
                        only_valid_rows: bool = False, mapping_override: dict[str, str] | None = None,
                        date_order: str = "", user=None, now: datetime) -> ImportBatch:
    if date_order and date_order not in DATE_ORDERS:
        raise ValueError(f"date_order is one of {', '.join(DATE_ORDERS)}, not {date_order!r}")
    return ImportBatch.objects.create(
        practice=practice, file_name=file_name[:255], sha256=hashlib.sha256(content).hexdigest(),
        content=content, dry_run=dry_run, only_valid_rows=only_valid_rows, mapping=mapping_override or {},
        date_order=date_order, created_by=user, created_at=now,
    )


def run_import_batch(*, batch_id: int, now: datetime, on_progress: ProgressCallback | None = None) -> ImportBatch:
    """Check the batch's file, and import it unless it is a dry run or has errors the manager did
    not choose to skip. Progress is saved as it goes, for the page's progress bar."""
    batch = ImportBatch.objects.select_related("practice").get(pk=batch_id)
    if batch.finished:
        return batch

    def progress(phase: str, done: int, total: int) -> None:
        status = ImportStatus.VALIDATING if phase == "check" else ImportStatus.IMPORTING
        ImportBatch.objects.filter(pk=batch.pk).update(status=status, progress=done, total_rows=total)
        if on_progress:
            on_progress(phase, done, total)

    ImportBatch.objects.filter(pk=batch.pk).update(status=ImportStatus.VALIDATING, progress=0)
    try:
        check = check_import(practice=batch.practice, content=bytes(batch.content), file_name=batch.file_name,
                             now=now, mapping_override=batch.mapping or None, date_order=batch.date_order,
                             on_progress=progress)
        rejected = check.rejected_lines
        batch.total_rows = check.total_rows
        batch.created_count = check.count("create")
        batch.changed_count = check.count("change")
        batch.unchanged_count = check.count("unchanged")
        batch.rejected_count = len(rejected - {0})
        batch.errors = [asdict(e) for e in check.errors]
        batch.report = {
            "mapping": check.mapping,
            "ignored_columns": check.ignored_columns,
            "column_notes": check.column_notes,
            "date_order": check.date_order,
            "actions": [{"line": p.line, "member_number": p.member_number, "action": p.action, "detail": p.detail}
                        for p in check.planned if p.action != "unchanged"][:MAX_STORED_ACTIONS],
        }
        file_level = 0 in rejected
        if batch.dry_run:
            batch.status = ImportStatus.VALIDATED
        elif file_level or (check.errors and not batch.only_valid_rows):
            batch.status = ImportStatus.REJECTED
        else:
            if check.errors:
                batch.report["skipped_rows"] = sorted(rejected)
            apply_import(practice=batch.practice, check=check, batch=batch, now=now, on_progress=progress)
            batch.status = ImportStatus.IMPORTED
    except Exception:
        logger.exception("import batch %s failed", batch.pk)
        batch.status = ImportStatus.FAILED
        batch.errors = list(batch.errors or []) + [
            {"line": 0, "column": "", "message": "The import stopped on an unexpected error; nothing of the "
                                                 "unfinished chunk was written. Run it again to finish."}]
    batch.progress = batch.total_rows if batch.status != ImportStatus.FAILED else batch.progress
    batch.finished_at = now
    batch.save(update_fields=["status", "total_rows", "progress", "created_count", "changed_count",
                              "unchanged_count", "rejected_count", "errors", "report", "finished_at"])
    logger.info("import batch %s: %s (%s rows)", batch.pk, batch.status, batch.total_rows)
    return batch
