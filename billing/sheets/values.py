"""The values in a membership spreadsheet's cells: text, dates (month/day or day/month, decided per
column), amounts in dollars, whole units, yes/no, membership statuses. Each parser raises
`ValueProblem` with what is wrong, for the row's error. Pure functions, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable


class ValueProblem(ValueError):
    pass


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).replace("\ufeff", "").split())


# What a spreadsheet writes in a cell it has nothing for.
_PLACEHOLDERS = {"n/a", "na", "n.a.", "n.a", "none", "-", "--", "---", "\u2013", "\u2014", "?", "unknown", "tbd",
                 "null", "nil", "not provided", "no email", "no phone", "no mobile"}


def is_placeholder(value: Any) -> bool:
    """ "N/A", "none", "-", "?"…: a cell with nothing in it, as blank as an empty one."""
    return isinstance(value, str) and text(value).lower() in _PLACEHOLDERS


_EXCEL_EPOCH = date(1899, 12, 30)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%b %d %Y", "%B %d %Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y",
                 "%B %d, %Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d-%b-%Y", "%d-%b-%y", "%b-%d-%Y",
                 "%b %d, %y", "%a, %b %d, %Y", "%A, %B %d, %Y", "%b. %d, %Y", "%Y%m%d", "%Y.%m.%d", "%d %b, %Y",
                 "%d %B, %Y")
# "January 3rd, 2024", "Sept 3, 2024": the ordinal's letters and September's fourth letter go.
_ORDINAL = re.compile(r"(?<=\d)(st|nd|rd|th)\b", re.IGNORECASE)
_SEPT = re.compile(r"\bsept\b", re.IGNORECASE)
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


def parse_date(value: Any, *, order: str = MONTH_FIRST, born: bool = False) -> date | None:
    """ISO, 03/05/2024 read as `order` says (month/day unless told day/month), day.month.year,
    "Mar 5, 2024", Excel serial numbers and real Excel dates. Which order a column of 03/05/2024 dates
    is in is decided from all its values first (`decide_date_order`). A date of birth (`born`) may be
    an Excel serial from 1910 on; other dates from 1954 on."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _excel_serial(float(value), born=born)
    raw = text(value)
    if re.fullmatch(r"\d{4,5}(\.\d+)?" if born else r"\d{5}(\.\d+)?", raw):
        return _excel_serial(float(raw), born=born)
    parts = _numeric_date(raw)
    if parts:
        first, second, year = parts
        month, day = (first, second) if order == MONTH_FIRST else (second, first)
        try:
            return date(year, month, day)
        except ValueError:
            raise ValueProblem(f"'{raw}' is not a date (read as {DATE_ORDERS[order]})") from None
    written = _SEPT.sub("Sep", _ORDINAL.sub("", raw))
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(written, fmt).date()
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


_BORN_FROM_SERIAL = 3654            # 1910-01-01: a smaller number in a birth-date column is no date (an age?)


def _excel_serial(number: float, *, born: bool = False) -> date:
    if not 1 <= number < 2958466:
        raise ValueProblem(f"{number:g} is not a date")
    if not (_BORN_FROM_SERIAL if born else 20000) <= number <= 80000:  # 1954..2119: else a number, not a date
        raise ValueProblem(f"{number:g} is not a date (use e.g. 2024-03-05)")
    return _EXCEL_EPOCH + timedelta(days=int(number))


_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")       # 1,299.00: commas separate thousands
_DOT_GROUP = re.compile(r"[1-9]\d{0,2}\.\d{3}")            # 1.250: 1250 (thousands) or 1.25?
_COMMA_DECIMALS = re.compile(r"(\d+|\d{1,3}(\.\d{3})+),\d{1,2}")   # 199,00 or 1.299,5: a decimal comma


def parse_decimal(value: Any, *, what: str, dollars: bool = False, decimal_comma: bool = False) -> Decimal | None:
    """A number as a US spreadsheet writes it: "1299", "1,299.00", "$50", "(25.00)". A comma is only
    a thousands separator; a number the other convention would read differently ("1,5", "12,50",
    "1.250", "1.299,00") is refused rather than guessed. In a file written the European way
    (`decimal_comma`: its columns separated by ';') a comma followed by one or two digits marks the
    decimals ("199,00", "1.299,50"); "1,299" is refused there (a thousand, or one and a bit?)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"'{value}' is not {what}")
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    raw = text(value)
    negative = raw.startswith("(") and raw.endswith(")")
    cleaned = raw.strip("()").replace("$", "").replace("USD", "").replace("usd", "").strip()
    if cleaned in ("-", "\u2013", "\u2014") and raw != cleaned:
        return Decimal(0)                 # "$ -": Excel's accounting format writes a zero so
    if cleaned.startswith("-"):
        negative, cleaned = True, cleaned[1:].strip()
    cleaned = cleaned.replace("€", "").replace("EUR", "").strip() if decimal_comma else cleaned
    if decimal_comma and _COMMA_DECIMALS.fullmatch(cleaned):
        cleaned = cleaned.replace(".", "").replace(",", ".")
    elif decimal_comma and _GROUPED.fullmatch(cleaned) and "." not in cleaned:     # 1,299.00 is plain
        whole, fraction = cleaned.replace(",", ""), cleaned.replace(",", ".", 1)
        raise ValueProblem(f"'{raw}' is ambiguous in a file whose columns are separated by ';', where a comma "
                           f"marks decimals: write {whole} or {fraction}")
    elif _GROUPED.fullmatch(cleaned):
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


def parse_cents(value: Any, *, decimal_comma: bool = False) -> int | None:
    """ "$50.00", "50", "1,234.5", 50.0 → cents. Negative or fractional cents are refused, and so are
    amounts whose separators could mean something else ("1.250", "12,50"; "199,00" is 199 dollars in
    a `decimal_comma` file)."""
    amount = parse_decimal(value, what="an amount", dollars=True, decimal_comma=decimal_comma)
    if amount is None:
        return None
    if amount < 0:
        raise ValueProblem(f"negative amount ({text(value)})")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueProblem(f"'{text(value)}' has fractions of a cent")
    return int(cents)


_PER_MONTH = re.compile(r"\s*(/\s*(mo|mon|mth|month)\.?|per\s+(mo|month)|a\s+month|monthly|p/m)$", re.IGNORECASE)


def parse_price(value: Any, *, decimal_comma: bool = False) -> int | None:
    """A monthly price in cents: an amount as `parse_cents` reads it, with or without "/mo",
    "per month", "monthly" after it ("$199/mo")."""
    if isinstance(value, str):
        value = _PER_MONTH.sub("", text(value))
    return parse_cents(value, decimal_comma=decimal_comma)


def parse_units(value: Any, *, decimal_comma: bool = False) -> int | None:
    number = parse_decimal(value, what="a whole number of units", decimal_comma=decimal_comma)
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
    "inactive": "cancelled", "terminated": "cancelled", "expired": "cancelled", "closed": "cancelled",
}
# Where a status's own words end and a note about it begins: "Cancelled - moved", "Active (autopay)",
# "Cancelled 3/1/2024", "Paused: travelling".
_STATUS_NOTE = re.compile(r"\s+[-\u2013\u2014]\s|\s*[(:;,/]|\s+\d")


def parse_status(value: Any) -> str:
    """A membership status in the ledger's words, from the sheet's ("Canceled", "On hold", "Past due"),
    also when a note follows it ("Cancelled 3/1/2024", "Active (autopay)", "Paused - travelling")."""
    raw = text(value).lower()
    if not raw:
        return "active"
    head = _STATUS_NOTE.split(raw, maxsplit=1)[0].strip()
    for candidate in (raw, head, " ".join(head.split()[:2]), " ".join(head.split()[:1])):
        status = STATUS_SYNONYMS.get(candidate) or STATUS_SYNONYMS.get(candidate.replace("-", " ").replace("_", " "))
        if status is not None:
            return status
    raise ValueProblem(f"unknown status '{text(value)}' (use active, paused, past due or cancelled)")
