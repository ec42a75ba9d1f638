"""The first pass of an import, the check: read every row, parse and validate it, and plan what
importing it would do (create, change, leave unchanged, reject) without writing anything. Besides
each row's own problems, the check finds what only the whole file shows: a member twice, a
processor id another member has, a paused membership without the end of its pause."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable

from django.conf import settings

from billing.models import SheetRow
from memberships.models import Member, Membership, MembershipStatus, Practice, Service, ServiceKind, Tier
from memberships.services.members import MemberIndex, Person, same_first_name

from .columns import BALANCE_PREFIX, DATE_FIELDS, FIELD_LABELS, FIELD_SYNONYMS, Mapping, guess_mapping
from .duplicates import ProcessorIds, name_key, shared_contacts
from .layout import below_titles, heading_status_problems, without_headings, without_totals
from .reading import RawSheet, SheetError, normalize_header, read_sheet
from .rows import CONTACT_FIELDS, ImportRow, RowError, find_tier, parse_row, practice_catalog
from .values import DateOrder, decide_date_order, text

ProgressCallback = Callable[[str, int, int], None]
KNOWN_FIELDS = set(FIELD_SYNONYMS)


@dataclass
class PlannedRow:
    line: int
    member_number: str
    action: str          # create | change | unchanged
    detail: str
    row: ImportRow = field(repr=False)
    member_id: int | None = None     # the member the ledger has that the row was matched to


@dataclass
class ImportCheck:
    """The dry run: what the file holds and what importing it would do."""

    total_rows: int = 0
    mapping: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    column_notes: dict[str, str] = field(default_factory=dict)   # header → how it is read, or why not
    date_order: str = ""                                         # the import's order for ambiguous dates
    suggestions: list[dict] = field(default_factory=list)        # balance-like columns to confirm
    left_out: list[dict] = field(default_factory=list)           # [{line, why}]: lines that are no member
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)     # worth a look; they do not stop the import
    planned: list[PlannedRow] = field(default_factory=list)

    @property
    def rejected_lines(self) -> set[int]:
        return {e.line for e in self.errors}

    def count(self, action: str) -> int:
        return sum(1 for p in self.planned if p.action == action)


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
    tiers, refs, services = practice_catalog(practice)
    if sheet.other_sheets:
        others = ", ".join(f"'{name}'" for name in sheet.other_sheets)
        check.warnings.append(RowError(0, "", f"only the workbook's first sheet, '{sheet.sheet_name}', is read; its "
                                              f"other sheets ({others}) are not: import each as a file of its own"))
    sheet = below_titles(sheet, services=refs, override=mapping_override)
    sheet, check.left_out = without_totals(sheet)
    sheet, headings, under_heading = without_headings(sheet)
    check.left_out = sorted(check.left_out + headings, key=lambda item: item["line"])
    mapping = guess_mapping(headers=sheet.headers, services=refs, override=mapping_override)
    _check_columns(check, sheet=sheet, mapping=mapping, services=services)
    check.suggestions = mapping.suggestions
    # File-level problems do not stop the rows' check: the report names every bad row either way.
    date_orders = _decide_date_orders(check, sheet=sheet, mapping=mapping, default=date_order)
    _note_tier_readings(check, sheet=sheet, mapping=mapping, tiers=tiers)
    _note_decimal_comma(check, sheet=sheet, mapping=mapping, services=services)
    parsed = [parse_row(line=line, cells=cells, headers=sheet.headers, mapping=mapping, tiers=tiers,
                        services=services, date_orders=date_orders, date_order=date_order,
                        decimal_comma=sheet.decimal_comma, today=practice.local_date(now))
              for line, cells in sheet.rows]
    planner = _RowPlanner(practice=practice, sheet=sheet, mapping=mapping,
                          rows=[row for row, _ in parsed if row is not None],
                          tiers_by_code={t.code: t for t in tiers.values()}, services=services,
                          today=practice.local_date(now))
    statuses = heading_status_problems(sheet, mapping=mapping, under=under_heading)
    for done, (row, errors) in enumerate(parsed, start=1):
        if row is not None:
            errors.extend(statuses.get(row.line, []))
            errors.extend(planner.problems(row))
        if errors:
            check.errors.extend(errors)
        else:
            check.planned.append(planner.plan(row))
            check.warnings.extend(planner.worth_a_look(check.planned[-1]))
        if on_progress and (done % 1000 == 0 or done == check.total_rows):
            on_progress("check", done, check.total_rows)
    return check


def _check_columns(check: ImportCheck, *, sheet: RawSheet, mapping: Mapping, services: dict[str, Service]) -> None:
    """How each column is read, and the file-level problems: a mapping the manager must settle, a
    field that does not exist, a required column missing."""
    check.total_rows = len(sheet.rows)
    check.mapping = {sheet.headers[i]: f for i, f in sorted(mapping.columns.items())}
    check.ignored_columns = mapping.ignored
    check.column_notes = dict(mapping.notes)
    for problem in mapping.problems:
        check.errors.append(RowError(0, "", problem))
    unknown_targets = [f for f in mapping.columns.values()
                       if f not in KNOWN_FIELDS
                       and not (f.startswith(BALANCE_PREFIX) and f[len(BALANCE_PREFIX):] in services)]
    for target in unknown_targets:
        check.errors.append(RowError(0, "", f"unknown field '{target}' in the column mapping"))
    present = set(mapping.columns.values())
    for required, label in (("tier", "tier"), ("start_date", "start date")):
        if required not in present:
            examples = ", ".join(f"'{s.title()}'" for s in FIELD_SYNONYMS[required][:3])
            check.errors.append(RowError(0, "", f"no column for the {label} (headers such as {examples})"))
    if not ({"first_name", "last_name", "full_name"} & present):
        check.errors.append(RowError(0, "", "no column for the member's name ('First name'/'Last name' or 'Name')"))
    if not ({"member_number", "email", "phone", "date_of_birth"} & present):
        check.errors.append(RowError(0, "", "no column to recognise a member by when the sheet is imported again: "
                                            "a member number, an email, a mobile or a date of birth"))


def _decide_date_orders(check: ImportCheck, *, sheet: RawSheet, mapping: Mapping,
                        default: str) -> dict[str, DateOrder]:
    """Each date column's order (month/day or day/month), noted on the column."""
    date_orders: dict[str, DateOrder] = {}
    for name in DATE_FIELDS:
        index = mapping.index_of(name)
        if index is None:
            continue
        decision = decide_date_order(((line, cells[index]) for line, cells in sheet.rows if index < len(cells)),
                                     default=default)
        if decision:
            date_orders[name] = decision
            check.column_notes[sheet.headers[index]] = decision.explain()
    return date_orders


def _note_tier_readings(check: ImportCheck, *, sheet: RawSheet, mapping: Mapping, tiers: dict[str, Tier]) -> None:
    """The tier names the sheet writes otherwise than the catalogue ("Glow Membership"), each with
    the tier it is read as, noted on the tier column for the manager to see."""
    index = mapping.index_of("tier")
    if index is None:
        return
    readings: dict[str, str] = {}
    for _, cells in sheet.rows:
        raw = text(cells[index]) if index < len(cells) and isinstance(cells[index], str) else ""
        if raw and raw not in readings and normalize_header(raw) not in tiers:
            tier = find_tier(tiers, raw)
            if tier is not None:
                readings[raw] = tier.name
    if readings:
        check.column_notes[sheet.headers[index]] = "; ".join(f"'{raw}' read as the {name} tier"
                                                             for raw, name in sorted(readings.items()))


def _note_decimal_comma(check: ImportCheck, *, sheet: RawSheet, mapping: Mapping, services: dict[str, Service]) -> None:
    """In a file separated by ';', the amount columns say that a comma marks the cents."""
    if not sheet.decimal_comma:
        return
    for index, name in sorted(mapping.columns.items()):
        service = services.get(name[len(BALANCE_PREFIX):]) if name.startswith(BALANCE_PREFIX) else None
        if name == "price" or (service is not None and service.kind == ServiceKind.CREDIT):
            header = sheet.headers[index]
            note = "amounts read with a comma before the cents (199,00), as the file's ';' separators say"
            check.column_notes[header] = "; ".join(filter(None, (check.column_notes.get(header), note)))


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
    tier = tiers_by_code.get(row.tier_code)
    status = row.status.replace("_", " ") + (f" until {row.paused_until:%Y-%m-%d}" if row.paused_until else "")
    parts = [f"{row.first_name} {row.last_name}".strip(), f"{tier.name if tier else 'no tier'}, {status}"]
    if row.start_date:
        parts.append(f"since {row.start_date:%Y-%m-%d}")
    if row.balances:
        parts.append("opening balance " + ", ".join(
            f"{services[code].format_quantity(q)} {services[code].name}" for code, q in sorted(row.balances.items())))
    return "; ".join(parts)


def person_of(row: ImportRow) -> Person:
    return Person(member_number=row.member_number, email=row.email, phone=row.phone, first_name=row.first_name,
                  last_name=row.last_name, date_of_birth=row.date_of_birth, household=row.household)


def _contact_changes(member: dict, row: ImportRow) -> list[str]:
    changes = [name.replace("_", " ") for name in CONTACT_FIELDS
               if getattr(row, name) and getattr(row, name) != member[name]]
    if row.sms_consent is not None and row.sms_consent != member["sms_consent"]:
        changes.append("sms consent")
    return changes


_MEMBER_FIELDS = ("pk", "member_number", "email", "phone", "first_name", "last_name", "date_of_birth",
                  "record_patient_id", "processor_customer_id", "sms_consent")


class _RowPlanner:
    """Row by row, in the file's order: who each row is (a member the ledger has, matched by number,
    email, mobile or name + date of birth, read once for the whole file), the problems only the whole
    file shows, and what a valid row would do to the ledger."""

    def __init__(self, *, practice: Practice, sheet: RawSheet, mapping: Mapping, rows: list[ImportRow],
                 tiers_by_code: dict[str, Tier], services: dict[str, Service], today: date):
        members = [dict(zip(_MEMBER_FIELDS, values)) for values in
                   Member.objects.filter(practice=practice).values_list(*_MEMBER_FIELDS)]
        self.members = {m["pk"]: m for m in members}
        self.index = MemberIndex(tuple(m[f] for f in MemberIndex.FIELDS) for m in members)
        self.sheet_hashes = dict(SheetRow.objects.filter(practice=practice).values_list("member_number", "row_hash"))
        self.with_membership = set(Membership.objects.filter(member__practice=practice)
                                   .values_list("member_id", flat=True))
        self.shared = shared_contacts(rows, mapping=mapping, headers=sheet.headers)
        self.seen_numbers: dict[str, int] = {}
        self.seen_members: dict[int, int] = {}
        self.matched: dict[int, int | None] = {}
        number_index = mapping.index_of("member_number")
        self.number_column = sheet.headers[number_index] if number_index is not None else FIELD_LABELS["member_number"]
        cancel_index = mapping.index_of("cancelled_on")
        self.cancel_column = sheet.headers[cancel_index] if cancel_index is not None else FIELD_LABELS["cancelled_on"]
        pause_index = mapping.index_of("paused_until")
        self.pause_column = sheet.headers[pause_index] if pause_index is not None else FIELD_LABELS["paused_until"]
        self.processor_ids = ProcessorIds(rows, mapping=mapping, headers=sheet.headers)
        self.columns = {name: sheet.headers[mapping.index_of(name)] if mapping.index_of(name) is not None
                        else FIELD_LABELS[name] for name in ("email", "phone", "first_name", "full_name")}
        if mapping.index_of("first_name") is None and mapping.index_of("full_name") is not None:
            self.columns["first_name"] = self.columns["full_name"]
        self.tiers_by_code, self.services, self.today = tiers_by_code, services, today
        self.by_name: dict[tuple, list[dict]] = {}
        for member in members:
            self.by_name.setdefault(name_key(member), []).append(member)
        self.new_names: dict[tuple, ImportRow] = {}

    def problems(self, row: ImportRow) -> list[RowError]:
        line = row.line
        by_contact = not row.member_number          # matched, if at all, by email, mobile or name + birth date
        member_id = self.index.match(person_of(row))
        if member_id is not None:
            row.member_number = self.index.numbers[member_id]
        self.matched[line] = member_id
        errors = self.processor_ids.check(row, member_id=member_id)
        errors.extend(self._identity_problems(row, member_id=member_id, by_contact=by_contact))
        if by_contact and member_id is None:
            errors.extend(self._namesake_problems(row))
        number = row.member_number.lower()
        if number and number in self.seen_numbers:
            errors.append(RowError(line, self.number_column,
                                   f"duplicate member: {row.member_number} is already on line {self.seen_numbers[number]}"))
        elif member_id is not None and member_id in self.seen_members:
            errors.append(RowError(line, self.number_column, f"the same member ({row.member_number}) as line "
                                                             f"{self.seen_members[member_id]}"))
        else:
            errors.extend(self.shared.get(line, []))
            if number:
                self.seen_numbers[number] = line
            if member_id is not None:
                self.seen_members[member_id] = line
        if not (number or row.email or row.phone or row.date_of_birth):
            errors.append(RowError(line, self.number_column, "nothing to recognise this member by when the sheet is "
                                                             "imported again: no member number, email, mobile or "
                                                             "date of birth"))
        if member_id not in self.with_membership:
            problem = _pause_end_problem(row, column=self.pause_column, today=self.today)
            if problem:
                errors.append(problem)
        return errors

    def _identity_problems(self, row: ImportRow, *, member_id: int | None, by_contact: bool) -> list[RowError]:
        """A row matched by email or mobile must name that member (the same first name): otherwise it
        is someone else, and importing it would rename the member. And a row's email or mobile must be
        no other member's (unless the row is of a household): a new member number with an existing
        member's email would be a second member for one person."""
        if by_contact and member_id is not None and not same_first_name(row.first_name,
                                                                         self.members[member_id]["first_name"]):
            member = self.members[member_id]
            theirs, ours = f"{member['first_name']} {member['last_name']}", f"{row.first_name} {row.last_name}".strip()
            return [RowError(row.line, self.columns["first_name"],
                             f"the email or mobile is that of {theirs} ({member['member_number']}), not of {ours}: "
                             f"correct the row, or a Household column with the member's household makes {ours} "
                             f"a member of their own")]
        if row.household:
            return []
        errors = []
        for name, what in (("email", "email"), ("phone", "mobile")):
            value = getattr(row, name)
            owners = self.index.owners(**{name: value}) if value else set()
            if owners and member_id not in owners:
                other = self.members[min(owners)]
                errors.append(RowError(row.line, self.columns[name],
                                       f"the {what} {value} is already member {other['member_number']}'s "
                                       f"({other['first_name']} {other['last_name']}): two members cannot share "
                                       f"one (a Household column allows it for one household)"))
        return errors

    def _namesake_problems(self, row: ImportRow) -> list[RowError]:
        """A row matched to no member but whose name several members have, with its email, mobile or
        date of birth: it is one of them, not someone new (created, every import of the file again
        would add another)."""
        namesakes = self.index.namesakes(person_of(row))
        if len(namesakes) < 2:
            return []
        numbers = sorted(self.members[pk]["member_number"] for pk in namesakes)
        return [RowError(row.line, self.number_column,
                         f"{row.first_name} {row.last_name} could be member {', '.join(numbers[:-1])} or "
                         f"{numbers[-1]} (the same name, and the same email, mobile or date of birth): add the "
                         f"member number in a 'Member #' column to say which")]

    def worth_a_look(self, planned: PlannedRow) -> list[RowError]:
        """What a valid row may not mean as it will be imported: a cancel date after today (imported as
        it is, to be cancelled when the member leaves), and a new member whose name a member the ledger
        has, or another new row, has too (the same person with a typo in the email?), though namesakes
        are often two people."""
        row, column = planned.row, self.columns["first_name"]
        found = []
        if row.cancelled_on and row.cancelled_on > self.today and row.status != MembershipStatus.CANCELLED:
            found.append(RowError(row.line, self.cancel_column,
                                  f"leaves on {row.cancelled_on:%Y-%m-%d}: imported as {row.status.replace('_', ' ')}; "
                                  f"cancel the membership at the desk (at the period end) so it is not renewed"))
        if (planned.action == "create" or planned.member_id not in self.with_membership) and row.balances and \
                row.status == MembershipStatus.CANCELLED and not (row.cancelled_on or row.period_end):
            found.append(RowError(row.line, self.cancel_column,
                                  "cancelled with a balance, but no cancel date or paid-through date: the balance is "
                                  "frozen and not usable from the import; give the date they paid through to keep "
                                  "it usable until then"))
        key = name_key(planned.row) if planned.action == "create" else None
        if key is None:
            return found
        for member in self.by_name.get(key, [])[:3]:     # its contacts are on its chart (audited), not here
            found.append(RowError(row.line, column, f"new member {row.first_name} {row.last_name}, but member "
                                                    f"{member['member_number']} has this name: if it is the same "
                                                    f"person, give their member number or the email or mobile on "
                                                    f"their chart"))
        earlier = self.new_names.setdefault(key, row)
        if earlier is not row:
            other = ("with another email or mobile" if (earlier.email, earlier.phone) != (row.email, row.phone)
                     else "born another day or of another first name")
            found.append(RowError(row.line, column, f"{row.first_name} {row.last_name} is also a new member on line "
                                                    f"{earlier.line}, {other}: the same person twice?"))
        return found

    def plan(self, row: ImportRow) -> PlannedRow:
        member_id = self.matched.get(row.line)
        if member_id is None:
            return PlannedRow(row.line, row.member_number, "create",
                              _describe_new(row, self.tiers_by_code, self.services), row)
        has_membership = member_id in self.with_membership
        changes = _contact_changes(self.members[member_id], row)
        if self.sheet_hashes.get(row.member_number) == row.row_hash() and has_membership and not changes:
            return PlannedRow(row.line, row.member_number, "unchanged", "", row, member_id)
        if not has_membership:
            detail = "existing member; gets the membership " + _describe_new(row, self.tiers_by_code, self.services)
        else:
            detail = ("updates " + ", ".join(changes) + "; " if changes else "") + \
                "sheet view updated (ledger differences go to reconciliation)"
        return PlannedRow(row.line, row.member_number, "change", detail, row, member_id)
