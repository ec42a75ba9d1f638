"""Where the members are in a sheet: the real header row of an export that puts a title or merged
group headers above it, the totals lines a spreadsheet keeps under its members, and the heading lines
between them ("CANCELLED MEMBERS"), with what a heading says of the rows under it. Pure functions,
no database."""

from __future__ import annotations

import re
from datetime import date

from .columns import FIELD_LABELS, Mapping, guess_mapping
from .reading import RawSheet, normalize_header
from .rows import RowError
from .values import STATUS_SYNONYMS, text


def below_titles(sheet: RawSheet, *, services: list, override: dict[str, str] | None) -> RawSheet:
    """The sheet read from its real header row: an export whose column names sit under a title row
    or a row of merged group headers ("Member", "Contact") has them on a later line, the line whose
    cells name the most known columns among the first few; the lines above are titles, not rows."""
    def known(cells: list) -> int:
        return len(guess_mapping(headers=[" ".join(str(c).split()) if c is not None else "" for c in cells],
                                 services=services, override=override).columns)

    best, best_known = None, known(sheet.headers)
    for index, (_, cells) in enumerate(sheet.rows[:TITLE_ROWS]):
        if known(cells) > max(best_known, 2):
            best, best_known = index, known(cells)
    if best is None:
        return sheet
    headers = [" ".join(str(c).split()) if c is not None else "" for c in sheet.rows[best][1]]
    rows = [(line, cells + [None] * (len(headers) - len(cells))) for line, cells in sheet.rows[best + 1:]]
    return RawSheet(headers=headers, rows=rows, decimal_comma=sheet.decimal_comma)


TITLE_ROWS = 3
# The first cell of a line a spreadsheet adds under its members: "Total", "Totals:", "Grand total",
# "Sum", "Count: 42", "Total members".
_TOTALS = re.compile(r"(grand |sub )?(totals?|sum|count|average)( .*)?")
_CURRENCY = re.compile(r"\b(usd|eur)\b", re.IGNORECASE)
_WRITTEN_DATE = re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}")


def _a_members_cell(cell) -> bool:
    """A cell only a member's line holds: a date (a member's join date) or words (a tier, a status),
    not a number, an amount or a formula ("=SUM(E2:E9)")."""
    if isinstance(cell, date):
        return True
    if not isinstance(cell, str) or cell.strip().startswith("="):
        return False
    words = _CURRENCY.sub("", cell)
    return bool(re.search(r"[^\W\d_]", words) or _WRITTEN_DATE.search(words))


def without_totals(sheet: RawSheet) -> tuple[RawSheet, list[dict]]:
    """The sheet without its totals lines (a line whose first filled cell says "Total", "Sum",
    "Count"…, its other cells numbers or amounts, no date or words: a member "Sum Yee Wong" has a tier
    and a join date), and those lines ([{line, why}]): they are no member, so they are left out and
    said so, not refused as a member with no tier."""
    rows, left_out = [], []
    for line, cells in sheet.rows:
        at = next((i for i, c in enumerate(cells) if c is not None and str(c).strip()), None)
        first = cells[at] if at is not None else None
        if (isinstance(first, str) and _TOTALS.fullmatch(normalize_header(first))
                and not any(_a_members_cell(c) for c in cells[at + 1:])):
            left_out.append({"line": line, "why": f"a totals line ('{' '.join(first.split())}'), not a member"})
            continue
        rows.append((line, cells))
    return (RawSheet(headers=sheet.headers, rows=rows, decimal_comma=sheet.decimal_comma) if left_out else sheet,
            left_out)


# A heading line between a sheet's members: one cell, "CANCELLED MEMBERS", "--- Paused ---", "Active
# clients". Its words: a status, or words such as these.
_HEADING_WORDS = {"member", "members", "membership", "memberships", "client", "clients", "guest", "guests",
                  "list", "section"}


def _status_named(words: list[str]) -> str | None:
    for size in (2, 1):
        for start in range(len(words) - size + 1):
            status = STATUS_SYNONYMS.get(" ".join(words[start:start + size]))
            if status is not None:
                return status
    return None


def without_headings(sheet: RawSheet) -> tuple[RawSheet, list[dict], dict[int, tuple[int, str, str]]]:
    """The sheet without the heading lines between its members (a line of one cell naming a status or
    saying "members", "clients"…, no digit, no email), those lines ([{line, why}]), and for each row
    under a heading that names a status, that heading: (line, its text, the status), so a row it
    leaves without a status of its own is not imported as active."""
    rows, left_out, under = [], [], {}
    heading: tuple[int, str, str] | None = None
    for line, cells in sheet.rows:
        filled = [c for c in cells if c is not None and str(c).strip()]
        words = normalize_header(filled[0]).split() if len(filled) == 1 and isinstance(filled[0], str) else []
        status = _status_named(words)
        if (words and "@" not in filled[0] and not any(ch.isdigit() for ch in filled[0])
                and (status or set(words) & _HEADING_WORDS)):
            written = " ".join(filled[0].split())
            left_out.append({"line": line, "why": f"a heading ('{written}'), not a member"})
            heading = (line, written, status) if status else None
            continue
        if heading:
            under[line] = heading
        rows.append((line, cells))
    if not left_out:
        return sheet, [], {}
    return RawSheet(headers=sheet.headers, rows=rows, decimal_comma=sheet.decimal_comma), left_out, under


def heading_status_problems(sheet: RawSheet, *, mapping: Mapping,
                            under: dict[int, tuple[int, str, str]]) -> dict[int, list[RowError]]:
    """A row under a heading that names a status ("CANCELLED MEMBERS") with no status of its own: an
    empty status imports as active, so the row says which it is."""
    index = mapping.index_of("status")
    column = sheet.headers[index] if index is not None else FIELD_LABELS["status"]
    problems: dict[int, list[RowError]] = {}
    for line, cells in sheet.rows:
        if line not in under or (index is not None and index < len(cells) and text(cells[index])):
            continue
        heading_line, heading, status = under[line]
        if status == "active":
            continue
        where = "its Status cell is empty" if index is not None else "the sheet has no Status column"
        problems[line] = [RowError(line, column, f"under the heading '{heading}' (line {heading_line}), but {where}: "
                                                 f"a member without a status is imported as active; say "
                                                 f"{status.replace('_', ' ')} (or active) in a Status column")]
    return problems
