"""One spreadsheet row read into an `ImportRow`: each mapped cell parsed and checked against the
ledger's column widths, the name split when the sheet has one name column, the tier looked up among
the practice's, opening balances per service. A row with problems gives its `RowError`s instead."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Callable

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from memberships.models import Member, Membership, MembershipStatus, Practice, Service, ServiceKind, Tier

from .columns import BALANCE_PREFIX, FIELD_LABELS, Mapping, ServiceRef, suggest_service
from .reading import UNSAVED_FORMULA, UnsavedFormula, normalize_header
from .values import (
    DateOrder,
    ValueProblem,
    is_placeholder,
    parse_bool,
    parse_cents,
    parse_date,
    parse_price,
    parse_status,
    parse_units,
    text,
)

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
# The member's details an import may update for a member the ledger already has.
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "record_patient_id", "processor_customer_id",
                  "date_of_birth")


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
    date_of_birth: date | None = None
    household: str = ""
    cancelled_on: date | None = None   # the sheet's cancel date: cancelled by then, or leaving on it

    def row_hash(self) -> str:
        data = {name: getattr(self, name) for name in _HASHED}
        data["balances"] = dict(self.balances)
        for name in ("paused_until", "date_of_birth", "household", "cancelled_on"):
            if not data[name]:
                data.pop(name)        # rows hashed before the column existed stay unchanged
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


_HASHED = tuple(f.name for f in fields(ImportRow) if f.name != "line")


def practice_catalog(practice: Practice) -> tuple[dict[str, Tier], list[ServiceRef], dict[str, Service]]:
    """The practice's active tiers by normalized code and name (the latest version), its services as
    the column guess needs them, and its services by code."""
    tiers: dict[str, Tier] = {}
    for tier in Tier.objects.filter(practice=practice, active=True).order_by("code", "version"):
        for key in (normalize_header(tier.code), normalize_header(tier.name)):
            tiers[key] = tier       # the latest version wins
    services = {s.code: s for s in Service.objects.filter(practice=practice, active=True)}
    refs = [ServiceRef(code=s.code, name=s.name, is_credit=s.kind == ServiceKind.CREDIT) for s in services.values()]
    return tiers, refs, services


# Words a sheet writes around a tier's name ("Glow Membership", "The Luxe Plan", "glow member").
_TIER_FILLER = {"membership", "memberships", "member", "members", "plan", "tier", "level", "package", "program",
                "club", "subscription", "the"}


def _loose(norm: str) -> str:
    return " ".join(w for w in norm.split() if w not in _TIER_FILLER)


def find_tier(tiers: dict[str, Tier], raw: Any) -> Tier | None:
    """The tier a cell names: its code or name whatever the case and spacing ("glow", "GLOW "), else
    the one tier whose name or code is what is left without words such as "membership" or "plan"
    ("Glow Membership" is Glow). None when no tier, or more than one, fits."""
    norm = normalize_header(raw)
    if norm in tiers:
        return tiers[norm]
    loose = _loose(norm)
    found = {tier.code: tier for key, tier in tiers.items() if loose and _loose(key) == loose}
    return next(iter(found.values())) if len(found) == 1 else None


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


def _parse_cell(raw: Any, parse: Callable[[Any], Any], *, placeholders: bool = True) -> Any:
    """The cell's value; "N/A", "none", "-"… read as an empty cell unless `placeholders` is False."""
    if isinstance(raw, UnsavedFormula):
        raise ValueProblem(UNSAVED_FORMULA)
    return parse(None if placeholders and is_placeholder(raw) else raw)


# Fields whose "N/A" or "Na" is what it says: no status (an error), a name (Na is a family name).
_NOT_PLACEHOLDERS = {"status", "first_name", "last_name", "full_name"}


class _RowReader:
    """The cells of one row by field, each parsed once; the problems found are gathered in `errors`."""

    def __init__(self, *, line: int, cells: list[Any], headers: list[str], mapping: Mapping,
                 date_orders: dict[str, DateOrder], date_order: str, decimal_comma: bool = False):
        self.line, self.cells, self.headers, self.mapping = line, cells, headers, mapping
        self.date_orders, self.date_order = date_orders, date_order
        self.decimal_comma = decimal_comma            # amounts written 199,00 (`reading.RawSheet`)
        self.errors: list[RowError] = []
        self.index_of = mapping.index_of

    def error(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.line, column, message))

    def cell(self, name: str) -> tuple[Any, str]:
        """The field's cell and its column's header (the field's label when no column holds it)."""
        index = self.index_of(name)
        if index is None:
            return None, FIELD_LABELS.get(name, name)
        return (self.cells[index] if index < len(self.cells) else None), self.headers[index]

    def dates(self, name: str) -> Callable[[Any], Any]:
        """The date parser of the field's column: in the order decided for the column, refusing the
        dates written the other way."""
        decision = self.date_orders.get(name)

        def parse(raw: Any) -> date | None:
            if decision and self.line in decision.conflicts:
                raise ValueProblem(decision.conflicts[self.line])
            return parse_date(raw, order=decision.order if decision else self.date_order,
                              born=name == "date_of_birth")
        return parse

    def take(self, name: str, parse: Callable[[Any], Any], required: bool = False) -> Any:
        """The field's parsed value; a problem is the row's error. A required field whose column the
        file lacks is the file's problem (said once), not every row's."""
        raw, column = self.cell(name)
        required = required and self.index_of(name) is not None
        try:
            value = _parse_cell(raw, parse, placeholders=name not in _NOT_PLACEHOLDERS)
        except ValueProblem as problem:
            self.error(column, str(problem))
            return None
        if required and value in (None, ""):
            self.error(column, "is empty")
        limit = _MAX_LENGTH.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            self.error(column, f"is longer than {limit} characters")
            return None
        return value


def _names(reader: _RowReader) -> tuple[str, str]:
    """First and last name, from their columns or split from the one name column ("Last, First" or
    "First Last")."""
    first = reader.take("first_name", text)
    last = reader.take("last_name", text)
    if reader.mapping.index_of("full_name") is not None and not (first or last):
        full = reader.take("full_name", text)
        if "," in (full or ""):
            last, _, first = (part.strip() for part in full.partition(","))
        else:
            first, _, last = (full or "").rpartition(" ") if " " in (full or "") else (full, "", "")
            first, last = (first or "").strip(), (last or "").strip()
    has_name_column = any(reader.mapping.index_of(n) is not None for n in ("first_name", "last_name", "full_name"))
    if not first and not last and has_name_column:
        reader.error(reader.cell("first_name")[1], "no name")
    for name, part in (("first_name", first), ("last_name", last)):
        if len(part or "") > _MAX_LENGTH[name]:
            reader.error(reader.cell(name)[1] or reader.cell("full_name")[1],
                         f"{name.replace('_', ' ')} is longer than {_MAX_LENGTH[name]} characters")
            first, last = (None, last) if name == "first_name" else (first, None)
    return first or "", last or ""


def _tier_code(reader: _RowReader, tiers: dict[str, Tier]) -> str:
    tier_raw, tier_column = reader.cell("tier")
    tier = None if isinstance(tier_raw, UnsavedFormula) else find_tier(tiers, tier_raw)
    if isinstance(tier_raw, UnsavedFormula):
        reader.error(tier_column, UNSAVED_FORMULA)
    elif reader.mapping.index_of("tier") is None:
        pass                                    # the file's problem: no tier column
    elif not text(tier_raw):
        reader.error(tier_column, "no tier")
    elif tier is None:
        names = ", ".join(sorted({t.name for t in tiers.values()})) or "none defined"
        reader.error(tier_column, f"unknown tier '{text(tier_raw)}' (tiers: {names})")
    return tier.code if tier else ""


# Words a balance cell may write after its number ("2 facials", "20u", "$50 credit", "1 left").
_COUNT_WORDS = {"unit", "units", "u", "session", "sessions", "treatment", "treatments", "visit", "visits", "credit",
                "credits", "left", "remaining", "available", "x", "dollars", "usd", "of", "worth"}
_COUNTED = re.compile(r"(\$?\s*[\d.,]+)\s*([^\d$]+)")


_MONEY = re.compile(r"[$€]|\b(dollars?|usd|eur)\b", re.IGNORECASE)


def _counted(raw: Any, service: Service) -> Any:
    """A balance cell written as a number and words ("2 facials", "1 HydraFacial left", "20u"): the
    number, when the words name the column's service or its units; `ValueProblem` when they name
    something else ("2 peels" in the HydraFacial column), or money in a column counting treatments or
    units ("$150 credit" is no 150 units of Botox). Any other cell as it is."""
    if isinstance(raw, str) and service.kind != ServiceKind.CREDIT and _MONEY.search(raw):
        raise ValueProblem(f"'{text(raw)}' is an amount of money, but {service.name} is counted in treatments or "
                           f"units: write the {service.name} balance as a number")
    match = _COUNTED.fullmatch(text(raw)) if isinstance(raw, str) else None
    if not match:
        return raw
    words = normalize_header(match.group(2))
    ref = ServiceRef(code=service.code, name=service.name, is_credit=service.kind == ServiceKind.CREDIT)
    if not words or set(words.split()) <= _COUNT_WORDS or suggest_service(
            " ".join(w for w in words.split() if w not in _COUNT_WORDS), [ref]) is not None:
        return match.group(1)
    raise ValueProblem(f"'{text(raw)}' does not say {service.name}: write the {service.name} balance as a number")


def _balances(reader: _RowReader, services: dict[str, Service]) -> dict[str, int]:
    """Service code → opening balance (units, or cents of a credit), from the balance columns."""
    balances: dict[str, int] = {}
    for index, name in reader.mapping.columns.items():
        if not name.startswith(BALANCE_PREFIX):
            continue
        code = name[len(BALANCE_PREFIX):]
        service = services[code]
        raw = reader.cells[index] if index < len(reader.cells) else None
        parse = parse_cents if service.kind == ServiceKind.CREDIT else parse_units
        try:
            quantity = _parse_cell(raw, lambda value: parse(_counted(value, service),
                                                            decimal_comma=reader.decimal_comma))
        except ValueProblem as problem:
            reader.error(reader.headers[index], str(problem))
            continue
        if quantity:
            balances[code] = quantity
    return balances


def _status_by_cancel_date(reader: _RowReader, values: dict[str, Any], *, today: date | None) -> None:
    """A cancel date on or before today makes a row with no status cancelled; a row whose status says
    otherwise is an error (which is it?), unless the date is before the join date: a member who left
    and joined again, the sheet keeping the old date (without a status, that is asked). A later date
    (leaving then) leaves the status as it is."""
    cancelled_on, status = values["cancelled_on"], values["status"]
    if not cancelled_on or today is None or cancelled_on > today or status in (None, MembershipStatus.CANCELLED):
        return
    raw, column = reader.cell("status")
    joined = values.get("start_date")
    if joined and cancelled_on < joined:
        if not text(raw):
            reader.error(column, f"cancelled on {cancelled_on:%Y-%m-%d} ('{reader.cell('cancelled_on')[1]}'), before "
                                 f"joining on {joined:%Y-%m-%d}: joined again? Say active or cancelled in the Status "
                                 f"column")
    elif not text(raw):
        values["status"] = MembershipStatus.CANCELLED
    else:
        reader.error(column, f"says {status.replace('_', ' ')}, but the membership was cancelled on "
                             f"{cancelled_on:%Y-%m-%d} ('{reader.cell('cancelled_on')[1]}'): make them agree")


def parse_row(*, line: int, cells: list[Any], headers: list[str], mapping: Mapping, tiers: dict[str, Tier],
              services: dict[str, Service], date_orders: dict[str, DateOrder], date_order: str,
              decimal_comma: bool = False, today: date | None = None) -> tuple[ImportRow | None, list[RowError]]:
    """The row, or None and every problem found in it."""
    reader = _RowReader(line=line, cells=cells, headers=headers, mapping=mapping, date_orders=date_orders,
                        date_order=date_order, decimal_comma=decimal_comma)
    take = reader.take
    # No member number (no column, or an empty cell): the member is matched by email, mobile or name
    # and date of birth, or gets the practice's next number (`checking`, `writing`).
    values: dict[str, Any] = {"member_number": take("member_number", text)}
    values["first_name"], values["last_name"] = _names(reader)
    values["email"] = take("email", _email)
    values["phone"] = take("phone", _phone)
    values["tier_code"] = _tier_code(reader, tiers)
    values["status"] = take("status", parse_status)
    values["cancelled_on"] = take("cancelled_on", reader.dates("cancelled_on"))
    values["start_date"] = take("start_date", reader.dates("start_date"), required=True)
    _status_by_cancel_date(reader, values, today=today)
    values["period_end"] = take("period_end", reader.dates("period_end"))
    # Only a paused membership has an end to its pause (whether it needs one: checking._pause_end_problem).
    values["paused_until"] = (take("paused_until", reader.dates("paused_until"))
                              if values["status"] == MembershipStatus.PAUSED else None)
    values["price_cents"] = take("price", lambda value: parse_price(value, decimal_comma=reader.decimal_comma))
    values["balances"] = _balances(reader, services)
    values["processor_customer_id"] = take("processor_customer_id", text)
    values["processor_subscription_id"] = take("processor_subscription_id", text)
    values["record_patient_id"] = take("record_patient_id", text)
    values["sms_consent"] = take("sms_consent", parse_bool)
    values["date_of_birth"] = take("date_of_birth", reader.dates("date_of_birth"))
    values["household"] = take("household", text).lower()
    if reader.errors:
        return None, reader.errors
    return ImportRow(line=line, **values), []
