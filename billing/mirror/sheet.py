"""Reading a membership spreadsheet (CSV or XLSX) and guessing what each column means.

Pure functions: bytes in, header + cells out; no database. Values are parsed in `billing.mirror.imports`.
"""

from __future__ import annotations

import csv
import io
import re
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
    "start_date": "Start date", "period_end": "Current period end", "price": "Price",
    "processor_customer_id": "Processor customer id", "processor_subscription_id": "Processor subscription id",
    "record_patient_id": "Record patient id", "sms_consent": "SMS consent",
}
BALANCE_PREFIX = "balance:"
# Words that may surround a service's name in a balance column's header.
_BALANCE_WORDS = {"balance", "balances", "remaining", "left", "bal", "units", "usd", "dollars", "current",
                  "opening", "available", "owed", "banked"}


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


def _read_xlsx(content: bytes) -> Iterable[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # zipfile/openpyxl raise many kinds
        raise SheetError("The file could not be read as an Excel workbook (XLSX).") from exc
    sheet = workbook.worksheets[0]
    return ((index, list(row)) for index, row in enumerate(sheet.iter_rows(values_only=True), start=1))


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

    def index_of(self, name: str) -> int | None:
        for index, f in self.columns.items():
            if f == name:
                return index
        return None


def _service_for_header(norm: str, services: list[ServiceRef]) -> ServiceRef | None:
    words = [w for w in norm.split() if w not in _BALANCE_WORDS]
    stripped = " ".join(words)
    best, best_len = None, 0
    for service in services:
        for candidate in (normalize_header(service.name), normalize_header(service.code)):
            if not candidate:
                continue
            if stripped == candidate or re.search(rf"\b{re.escape(candidate)}\b", norm):
                if len(candidate) > best_len:
                    best, best_len = service, len(candidate)
    return best


def guess_mapping(*, headers: list[str], services: list[ServiceRef],
                  override: dict[str, str] | None = None) -> Mapping:
    """Which field each column holds: the manager's override first, then known header spellings,
    then balance columns named after a service ("HydraFacial balance", "Product credit ($)")."""
    override = {normalize_header(k): v for k, v in (override or {}).items()}
    synonyms = {syn: name for name, syns in FIELD_SYNONYMS.items() for syn in syns}
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
            else:
                mapping.ignored.append(header)
            continue
        name = synonyms.get(norm)
        if name and name not in taken:
            mapping.columns[index] = name
            taken.add(name)
    for index, header in enumerate(headers):
        norm = normalize_header(header)
        if not norm or index in mapping.columns or header in mapping.ignored:
            continue
        service = _service_for_header(norm, services)
        target = f"{BALANCE_PREFIX}{service.code}" if service else None
        if target and target not in taken:
            mapping.columns[index] = target
            taken.add(target)
        else:
            mapping.ignored.append(header)
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
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%m-%d-%Y", "%d.%m.%Y", "%b %d %Y",
                 "%B %d %Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%Y-%m-%d %H:%M:%S",
                 "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p")


def parse_date(value: Any) -> date | None:
    """ISO, US month/day/year, day.month.year, "Mar 5, 2024", Excel serial numbers and real Excel
    dates. A day/month/year date is accepted only when it cannot be month/day (day > 12)."""
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
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", raw)
    if match and int(match.group(1)) > 12:
        try:
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        except ValueError:
            pass
    raise ValueProblem(f"'{raw}' is not a date (use e.g. 2024-03-05 or 03/05/2024)")


def _excel_serial(number: float) -> date:
    if not 1 <= number < 2958466:
        raise ValueProblem(f"{number:g} is not a date")
    if not 20000 <= number <= 80000:  # 1954..2119: anything else is a number, not a date
        raise ValueProblem(f"{number:g} is not a date (use e.g. 2024-03-05)")
    return _EXCEL_EPOCH + timedelta(days=int(number))


def parse_decimal(value: Any, *, what: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"'{value}' is not {what}")
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    raw = text(value)
    negative = raw.startswith("(") and raw.endswith(")")
    cleaned = raw.strip("()").replace("$", "").replace(",", "").replace("USD", "").replace("usd", "").strip()
    if cleaned.startswith("-"):
        negative, cleaned = True, cleaned[1:].strip()
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise ValueProblem(f"'{raw}' is not {what}") from None
    if not number.is_finite():
        raise ValueProblem(f"'{raw}' is not {what}")
    return -number if negative else number


def parse_cents(value: Any) -> int | None:
    """ "$50.00", "50", "1,234.5", 50.0 → cents. Negative or fractional cents are refused."""
    amount = parse_decimal(value, what="an amount")
    if amount is None:
        return None
    if amount < 0:
        raise ValueProblem(f"negative amount ({text(value)})")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueProblem(f"'{text(value)}' has fractions of a cent")
    return int(cents)


def parse_units(value: Any) -> int | None:
    number = parse_decimal(value, what="a number of treatments")
    if number is None:
        return None
    if number < 0:
        raise ValueProblem(f"negative balance ({text(value)})")
    if number != number.to_integral_value():
        raise ValueProblem(f"'{text(value)}' is not a whole number of treatments")
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
