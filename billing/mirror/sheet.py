"""Reading a membership spreadsheet (CSV or XLSX) and guessing what each column means.

Pure functions: bytes in, header + cells out; no database. Values are parsed in `billing.mirror.imports`.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

# The fields a row can carry, and header spellings seen in practices' spreadsheets (normalized:
# lower case, punctuation to spaces, single spaces).
FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "member_number": ("member number", "member no", "member id", "membership number",
                      "membership id", "membership no", "member num", "id", "number", "client id", "client number"),
    "first_name": ("first name", "first", "given name", "firstname", "fname", "forename"),
    "last_name": ("last name", "last", "surname", "family name", "lastname", "lname"),
    "full_name": ("name", "member", "full name", "member name", "client name", "patient name", "guest name"),
    "email": ("email", "e mail", "email address", "e mail address", "mail"),
    "phone": ("phone", "mobile", "cell", "phone number", "mobile phone", "mobile number", "cell phone",
              "telephone", "tel", "sms number"),
    "tier": ("tier", "membership", "plan", "membership tier", "level", "tier name", "membership type",
             "membership plan", "program"),
    "status": ("status", "membership status", "state"),
    "start_date": ("start date", "start", "member since", "joined", "join date", "date joined", "enrolled",
                   "enrollment date", "signup date", "sign up date", "started"),
    "paused_until": ("paused until", "pause until", "pause end", "pause end date", "pause ends", "pause ends on",
                     "paused through", "on hold until", "hold until", "frozen until", "resume date", "resumes",
                     "resumes on", "resume on"),
    "period_end": ("current period end", "next billing date", "next bill date", "renewal date", "renews",
                   "paid through", "next charge", "next payment date", "period end"),
    "price": ("price", "monthly price", "rate", "monthly rate", "dues", "monthly dues", "amount", "fee",
              "monthly fee", "price per month"),
    "processor_customer_id": ("stripe customer", "stripe customer id", "customer id", "processor customer id",
                              "stripe id", "stripe cus"),
    "processor_subscription_id": ("stripe subscription", "stripe subscription id", "subscription id",
                                  "subscription", "processor subscription id", "stripe sub", "sub id"),
    "record_patient_id": ("patient id", "record patient id", "chart id", "chart number", "ehr id", "emr id",
                          "guest id", "patient number", "record id"),
    "sms_consent": ("sms consent", "sms opt in", "sms optin", "text consent", "texting ok", "sms ok",
                    "consent to text", "sms", "text opt in", "ok to text"),
}
FIELD_LABELS = {
    "member_number": "Member number", "first_name": "First name", "last_name": "Last name",
    "full_name": "Name", "email": "Email", "phone": "Phone", "tier": "Tier", "status": "Status",
    "start_date": "Start date", "paused_until": "Paused until", "period_end": "Current period end", "price": "Price",
    "processor_customer_id": "Processor customer id", "processor_subscription_id": "Processor subscription id",
    "record_patient_id": "Record patient id", "sms_consent": "SMS consent",
}
BALANCE_PREFIX = "balance:"
DATE_FIELDS = ("start_date", "paused_until", "period_end")
# Words that may surround a service's name in a balance column's header. Any other word ("used",
# "per month", "price", "last", "redeemed"…) makes the column something else: it is not guessed.
_BALANCE_WORDS = {"balance", "balances", "remaining", "remain", "left", "bal", "units", "usd", "dollars", "current",
                  "opening", "available", "owed", "banked", "unused"}
# "HydraFacial credits left": a service's balance, unless "credit" is part of the service's name.
_CREDIT_WORDS = {"credit", "credits"}


def normalize_header(text: Any) -> str:
    text = str(text or "").replace("\ufeff", "").lower().replace("#", " number ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


@dataclass
class RawSheet:
    headers: list[str]
    rows: list[tuple[int, list[Any]]]   # (line number in the file, cells)


class SheetError(Exception):
    """The file as a whole cannot be read (not CSV/XLSX, no header row)."""


def _blank(cells: Iterable[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def read_sheet(*, content: bytes, file_name: str) -> RawSheet:
    """Header row and data rows with their line numbers; blank rows are dropped."""
    if file_name.lower().endswith((".xlsx", ".xlsm")) or content[:2] == b"PK":
        lines = _read_xlsx(content)
    else:
        lines = _read_csv(content)
    header_line, headers = None, []
    rows: list[tuple[int, list[Any]]] = []
    for line, cells in lines:
        if _blank(cells):
            continue
        if header_line is None:
            header_line = line
            headers = [str(c).replace("\ufeff", "").strip() if c is not None else "" for c in cells]
            continue
        rows.append((line, list(cells) + [None] * (len(headers) - len(cells))))
    if header_line is None:
        raise SheetError("The file is empty: no header row was found.")
    return RawSheet(headers=headers, rows=rows)


def _read_csv(content: bytes) -> Iterable[tuple[int, list[Any]]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes nearly anything
        raise SheetError("The file is not text (CSV) nor an Excel workbook (XLSX).")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    return ((reader.line_num, row) for row in reader)


@dataclass(frozen=True)
class UnsavedFormula:
    """An XLSX cell holding a formula whose result was never saved (the file was written by a
    program that does not calculate): its value is unknown, not blank and not 0."""

    formula: str

    def __str__(self) -> str:
        return self.formula


UNSAVED_FORMULA = "formula without a saved value: open and save the file in Excel, or paste values"
_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _read_xlsx(content: bytes) -> Iterable[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            has_formulas = any(_FORMULA_TAG.search(archive.read(name)) for name in archive.namelist()
                               if name.startswith("xl/worksheets/") and name.endswith(".xml"))
        formulas = load_workbook(io.BytesIO(content), read_only=True, data_only=False) if has_formulas else None
    except Exception as exc:  # zipfile/openpyxl raise many kinds
        raise SheetError("The file could not be read as an Excel workbook (XLSX).") from exc
    values = workbook.worksheets[0].iter_rows(values_only=True)
    if formulas is None:
        return ((index, list(row)) for index, row in enumerate(values, start=1))
    # Saved results come from the first reading, formulas from the second: a formula cell whose
    # saved result is missing reads as None in the first, and is marked as such.
    pairs = itertools.zip_longest(values, formulas.worksheets[0].iter_rows(values_only=True), fillvalue=())
    return ((index, [UnsavedFormula(str(raw)) if value is None and _is_formula(raw) else value
                     for value, raw in itertools.zip_longest(row, raw_row)])
            for index, (row, raw_row) in enumerate(pairs, start=1))


def _is_formula(raw: Any) -> bool:
    if isinstance(raw, str):
        return raw.startswith("=")
    return type(raw).__name__ in ("ArrayFormula", "DataTableFormula")


# --- column mapping -----------------------------------------------------------------------------

@dataclass
class ServiceRef:
    code: str
    name: str
    is_credit: bool


@dataclass
class Mapping:
    columns: dict[int, str] = field(default_factory=dict)   # column index → field
    ignored: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)     # header → why it was read so, or not read
    problems: list[str] = field(default_factory=list)       # file-level: the mapping needs the manager

    def index_of(self, name: str) -> int | None:
        for index, f in self.columns.items():
            if f == name:
                return index
        return None


def _service_names(service: ServiceRef) -> list[str]:
    return [n for n in dict.fromkeys((normalize_header(service.name), normalize_header(service.code))) if n]


def _balance_service(norm: str, services: list[ServiceRef]) -> ServiceRef | None:
    """The service whose balance a header names: once the balance words are taken out, what is left
    is exactly the service's name or code ("HydraFacial balance", "Product credit remaining",
    "HydraFacials left"); "credit" may go too ("HydraFacial credits left")."""
    words = [w for w in norm.split() if w not in _BALANCE_WORDS]
    for stripped in (" ".join(words), " ".join(w for w in words if w not in _CREDIT_WORDS)):
        for service in services:
            if any(stripped in (name, f"{name}s") for name in _service_names(service)):
                return service
    return None


def _mentioned_service(norm: str, services: list[ServiceRef]) -> tuple[ServiceRef, str] | None:
    """The service a header mentions among other words, and those other words."""
    best: tuple[ServiceRef, str] | None = None
    best_len = 0
    for service in services:
        for name in _service_names(service):
            match = re.search(rf"\b{re.escape(name)}s?\b", norm)
            if match and len(name) > best_len:
                rest = (norm[:match.start()] + " " + norm[match.end():]).split()
                best, best_len = (service, " ".join(w for w in rest if w not in _BALANCE_WORDS)), len(name)
    return best


def _balance_note(service: ServiceRef) -> str:
    return f"opening balance of {service.name}, in {'dollars' if service.is_credit else 'units'}"


def guess_mapping(*, headers: list[str], services: list[ServiceRef],
                  override: dict[str, str] | None = None) -> Mapping:
    """Which field each column holds: the manager's override first, then known header spellings,
    then balance columns named after a service ("HydraFacial balance", "Product credit ($)").

    A balance column is guessed only when its header is the service's name and balance words, nothing
    else: "HydraFacial used this month" or "Product credit per month" are not balances (an imported
    balance never expires), so they are left out with a note unless the manager maps them. Two
    columns that both look like one service's balance are a problem for the manager to settle."""
    override = {normalize_header(k): v for k, v in (override or {}).items()}
    synonyms = {syn: name for name, syns in FIELD_SYNONYMS.items() for syn in syns}
    by_code = {service.code: service for service in services}
    mapping = Mapping()
    taken: set[str] = set()
    for index, header in enumerate(headers):
        norm = normalize_header(header)
        if not norm:
            continue
        if norm in override:
            target = override[norm]
            if target:
                mapping.columns[index] = target
                taken.add(target)
                service = by_code.get(target[len(BALANCE_PREFIX):]) if target.startswith(BALANCE_PREFIX) else None
                mapping.notes[header] = "as mapped" + (f": {_balance_note(service)}" if service else "")
            else:
                mapping.ignored.append(header)
                mapping.notes[header] = "ignored as mapped"
            continue
        name = synonyms.get(norm)
        if name and name not in taken:
            mapping.columns[index] = name
            taken.add(name)
    candidates: dict[str, list[int]] = {}
    for index, header in enumerate(headers):
        norm = normalize_header(header)
        if not norm or index in mapping.columns or header in mapping.ignored:
            continue
        service = _balance_service(norm, services)
        if service is not None:
            target = f"{BALANCE_PREFIX}{service.code}"
            if target in taken:
                mapping.ignored.append(header)
                mapping.notes[header] = f"the {service.name} balance is read from the column mapped to it"
            else:
                candidates.setdefault(target, []).append(index)
            continue
        mapping.ignored.append(header)
        mentioned = _mentioned_service(norm, services)
        if mentioned:
            service, words = mentioned
            mapping.notes[header] = (
                f"names {service.name} but also says '{words}', so it is not read as the {service.name} "
                f"balance; if it holds the balance, map it: '{header} = {BALANCE_PREFIX}{service.code}'")
    for target, indexes in candidates.items():
        service = by_code[target[len(BALANCE_PREFIX):]]
        if len(indexes) == 1:
            mapping.columns[indexes[0]] = target
            mapping.notes[headers[indexes[0]]] = _balance_note(service)
            continue
        names = " and ".join(f"'{headers[i]}'" for i in indexes)
        mapping.problems.append(
            f"columns {names} both look like the {service.name} balance: say which one holds it, "
            f"e.g. '{headers[indexes[0]]} = {target}' and '{headers[indexes[1]]} =' to ignore the other")
    return mapping


# --- values ---------------------------------------------------------------------------------------

class ValueProblem(ValueError):
    pass


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).replace("\ufeff", "").split())


_EXCEL_EPOCH = date(1899, 12, 30)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%b %d %Y", "%B %d %Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y",
                 "%B %d, %Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
# 03/04/2026, 3-4-26, 03/04/2026 14:30, 03/04/2026 2:30 PM: month/day or day/month, decided per column.
_NUMERIC_DATE = re.compile(r"(\d{1,2})([/-])(\d{1,2})\2(\d{4}|\d{2})(?:\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]m)?)?",
                           re.IGNORECASE)
MONTH_FIRST, DAY_FIRST = "mdy", "dmy"
DATE_ORDERS = {MONTH_FIRST: "month/day", DAY_FIRST: "day/month"}


def _numeric_date(value: Any) -> tuple[int, int, int] | None:
    """The three numbers of a date written 03/04/2026 (or 3-4-26), as written; None for other forms."""
    if not isinstance(value, str):
        return None
    match = _NUMERIC_DATE.fullmatch(text(value))
    if not match:
        return None
    year = int(match.group(4))
    if len(match.group(4)) == 2:
        year += 2000 if year < 69 else 1900            # as strptime's %y
    return int(match.group(1)), int(match.group(3)), year


def parse_date(value: Any, *, order: str = MONTH_FIRST) -> date | None:
    """ISO, 03/05/2024 read as `order` says (month/day unless told day/month), day.month.year,
    "Mar 5, 2024", Excel serial numbers and real Excel dates. Which order a column of 03/05/2024 dates
    is in is decided from all its values first (`decide_date_order`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _excel_serial(float(value))
    raw = text(value)
    if re.fullmatch(r"\d{5}(\.\d+)?", raw):
        return _excel_serial(float(raw))
    parts = _numeric_date(raw)
    if parts:
        first, second, year = parts
        month, day = (first, second) if order == MONTH_FIRST else (second, first)
        try:
            return date(year, month, day)
        except ValueError:
            raise ValueProblem(f"'{raw}' is not a date (read as {DATE_ORDERS[order]})") from None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise ValueProblem(f"'{raw}' is not a date (use e.g. 2024-03-05 or 03/05/2024)")


@dataclass
class DateOrder:
    """How one column's 03/04/2026 dates are read, and why."""

    order: str
    evidence: tuple[int, str] | None = None          # (line, value) that can be read only this way
    conflicts: dict[int, str] = field(default_factory=dict)   # line → why its date is refused

    @property
    def label(self) -> str:
        return DATE_ORDERS[self.order]

    def explain(self) -> str:
        if self.evidence:
            text = f"dates read as {self.label}, as '{self.evidence[1]}' on line {self.evidence[0]} shows"
        else:
            text = (f"dates read as {self.label}, the import's date order: none of them shows the order "
                    f"(03/04/2026 could be either); check again with the other order if they are not")
        if self.conflicts:
            text += f"; {len(self.conflicts)} written the other way are rejected"
        return text


def decide_date_order(values: Iterable[tuple[int, Any]], *, default: str) -> DateOrder | None:
    """One order for a whole column: a date with a first part over 12 (13/04/2026) can only be
    day/month, one with a second part over 12 (04/13/2026) only month/day. When both kinds are in the
    column, the more common one wins (the import's order on a tie) and the other kind's rows are
    refused, naming an example of the column's order; when every date could be either, the import's
    order is used. None when the column has no such dates (ISO dates, Excel dates)."""
    only: dict[str, list[tuple[int, str]]] = {MONTH_FIRST: [], DAY_FIRST: []}
    seen = False
    for line, value in values:
        parts = _numeric_date(value)
        if not parts:
            continue
        seen = True
        first, second, _ = parts
        if first > 12 >= second:
            only[DAY_FIRST].append((line, text(value)))
        elif second > 12 >= first:
            only[MONTH_FIRST].append((line, text(value)))
    if not seen:
        return None
    mdy, dmy = len(only[MONTH_FIRST]), len(only[DAY_FIRST])
    order = default if mdy == dmy else (MONTH_FIRST if mdy > dmy else DAY_FIRST)
    other = DAY_FIRST if order == MONTH_FIRST else MONTH_FIRST
    decision = DateOrder(order=order, evidence=(only[order] or [None])[0])
    for line, value in only[other]:
        first, second, year = _numeric_date(value)
        month, day = (first, second) if other == MONTH_FIRST else (second, first)
        example = (f"e.g. '{decision.evidence[1]}' on line {decision.evidence[0]}" if decision.evidence
                   else "the import's date order")
        decision.conflicts[line] = (
            f"'{value}' can only be {DATE_ORDERS[other]}, but this column's dates are {DATE_ORDERS[order]} "
            f"({example}): write it as {year:04d}-{month:02d}-{day:02d}")
    return decision


def _excel_serial(number: float) -> date:
    if not 1 <= number < 2958466:
        raise ValueProblem(f"{number:g} is not a date")
    if not 20000 <= number <= 80000:  # 1954..2119: anything else is a number, not a date
        raise ValueProblem(f"{number:g} is not a date (use e.g. 2024-03-05)")
    return _EXCEL_EPOCH + timedelta(days=int(number))


_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")       # 1,299.00: commas separate thousands
_DOT_GROUP = re.compile(r"[1-9]\d{0,2}\.\d{3}")            # 1.250: 1250 (thousands) or 1.25?


def parse_decimal(value: Any, *, what: str, dollars: bool = False) -> Decimal | None:
    """A number as a US spreadsheet writes it: "1299", "1,299.00", "$50", "(25.00)". A comma is only
    a thousands separator; a number the other convention would read differently ("1,5", "12,50",
    "1.250", "1.299,00") is refused rather than guessed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"'{value}' is not {what}")
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    raw = text(value)
    negative = raw.startswith("(") and raw.endswith(")")
    cleaned = raw.strip("()").replace("$", "").replace("USD", "").replace("usd", "").strip()
    if cleaned.startswith("-"):
        negative, cleaned = True, cleaned[1:].strip()
    if _GROUPED.fullmatch(cleaned):
        cleaned = cleaned.replace(",", "")
    elif "," in cleaned:
        if dollars:
            raise ValueProblem(f"'{raw}' is ambiguous in a dollar column: a comma only separates thousands "
                               f"(1,250.00); write cents after a point, e.g. 12.50")
        raise ValueProblem(f"'{raw}' is not {what} (a comma only separates thousands, as in 1,500)")
    elif _DOT_GROUP.fullmatch(cleaned):
        whole = cleaned.replace(".", "")
        if dollars:
            raise ValueProblem(f"'{raw}' in a dollar column is ambiguous (thousands or cents?): "
                               f"write {whole} or {Decimal(cleaned).normalize()}")
        raise ValueProblem(f"'{raw}' is ambiguous (thousands or a fraction?): write {whole} or "
                           f"{Decimal(cleaned).normalize()}")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise ValueProblem(f"'{raw}' is not {what}") from None
    if not number.is_finite():
        raise ValueProblem(f"'{raw}' is not {what}")
    return -number if negative else number


def parse_cents(value: Any) -> int | None:
    """ "$50.00", "50", "1,234.5", 50.0 → cents. Negative or fractional cents are refused, and so are
    amounts whose separators could mean something else ("1.250", "12,50")."""
    amount = parse_decimal(value, what="an amount", dollars=True)
    if amount is None:
        return None
    if amount < 0:
        raise ValueProblem(f"negative amount ({text(value)})")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueProblem(f"'{text(value)}' has fractions of a cent")
    return int(cents)


def parse_units(value: Any) -> int | None:
    number = parse_decimal(value, what="a whole number of units")
    if number is None:
        return None
    if number < 0:
        raise ValueProblem(f"negative balance ({text(value)})")
    if number != number.to_integral_value():
        raise ValueProblem(f"'{text(value)}' is not a whole number of units")
    return int(number)


_TRUE = {"yes", "y", "true", "t", "1", "x", "opted in", "opt in", "ok", "consent", "consented"}
_FALSE = {"no", "n", "false", "f", "0", "opted out", "opt out", "none", "declined", "stop"}


def parse_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    raw = text(value).lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueProblem(f"'{text(value)}' is not yes or no")


STATUS_SYNONYMS = {
    "active": "active", "current": "active", "paid": "active", "ok": "active", "good standing": "active",
    "paused": "paused", "frozen": "paused", "on hold": "paused", "hold": "paused", "suspended": "paused",
    "past due": "past_due", "past_due": "past_due", "pastdue": "past_due", "overdue": "past_due",
    "delinquent": "past_due", "failed": "past_due", "declined": "past_due", "unpaid": "past_due",
    "cancelled": "cancelled", "canceled": "cancelled", "cancel": "cancelled", "ended": "cancelled",
    "inactive": "cancelled", "terminated": "cancelled",
}


def parse_status(value: Any) -> str:
    raw = text(value).lower()
    if not raw:
        return "active"
    status = STATUS_SYNONYMS.get(raw) or STATUS_SYNONYMS.get(raw.replace("-", " ").replace("_", " "))
    if status is None:
        raise ValueProblem(f"unknown status '{text(value)}' (use active, paused, past due or cancelled)")
    return status
