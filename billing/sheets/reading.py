"""Reading a membership spreadsheet (CSV or XLSX): bytes in, header + cells out, with each row's
line number; blank rows dropped, a formula whose result was never saved marked as such. Pure
functions, no database. Which field each column holds: `billing.sheets.columns`."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from xml.etree import ElementTree
from dataclasses import dataclass
from typing import Any, Iterable


def normalize_header(text: Any) -> str:
    text = str(text or "").replace("\ufeff", "").lower().replace("#", " number ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


@dataclass
class RawSheet:
    headers: list[str]
    rows: list[tuple[int, list[Any]]]   # (line number in the file, cells)
    # A CSV separated by semicolons (a European export): its numbers write decimals after a comma.
    decimal_comma: bool = False
    # A workbook's sheets: the one read (the first) and the other visible ones, which are not read.
    sheet_name: str = ""
    other_sheets: tuple[str, ...] = ()


class SheetError(Exception):
    """The file as a whole cannot be read (not CSV/XLSX, no header row)."""


def _blank(cells: Iterable[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


# What a file that is not a spreadsheet starts with, so it is named in the refusal (by its content:
# a PDF renamed .csv is still a PDF).
_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel (.xls) or Word (.doc) file; save it as .xlsx or CSV"),
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"), (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"), (b"\x7fELF", "a program"),
)
NOT_A_SHEET = "Upload a .csv or .xlsx file (in Excel, Numbers or Google Sheets: save or download it as CSV or .xlsx)."


def sniff_format(content: bytes) -> str:
    """ "xlsx" or "csv", from the content whatever the file is called; `SheetError` naming what the
    file is when it is neither."""
    head = content[:8]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise SheetError(f"The file is a damaged zip archive, not a spreadsheet. {NOT_A_SHEET}") from None
        if "xl/workbook.xml" in names:
            return "xlsx"
        what = ("a Word document" if "word/document.xml" in names else
                "an OpenDocument file (.ods/.odt): save it as .xlsx or CSV" if "mimetype" in names else "a zip archive")
        raise SheetError(f"The file is {what}, not a spreadsheet. {NOT_A_SHEET}")
    for signature, what in _SIGNATURES:
        if content.startswith(signature):
            raise SheetError(f"The file is {what}, not a spreadsheet. {NOT_A_SHEET}")
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "csv"                      # Excel's "Unicode text": UTF-16, read as text
    sample = content[:65536]
    if b"\x00" in sample or sum(b < 9 or 13 < b < 32 for b in sample) > len(sample) // 100:
        raise SheetError(f"The file is not text (CSV) nor an Excel workbook (XLSX). {NOT_A_SHEET}")
    return "csv"


def read_sheet(*, content: bytes, file_name: str = "") -> RawSheet:
    """Header row and data rows with their line numbers; blank rows are dropped. The format comes
    from the content (`sniff_format`), never from the file's name."""
    sheet_name, other_sheets = "", ()
    if sniff_format(content) == "xlsx":
        (lines, sheet_name, other_sheets), delimiter = _read_xlsx(content), ""
    else:
        lines, delimiter = _read_csv(content)
    header_line, headers = None, []
    rows: list[tuple[int, list[Any]]] = []
    for line, cells in lines:
        if _blank(cells):
            continue
        if header_line is None:
            header_line = line
            headers = [" ".join(str(c).replace("\ufeff", "").split()) if c is not None else "" for c in cells]
            continue
        rows.append((line, list(cells) + [None] * (len(headers) - len(cells))))
    if header_line is None:
        raise SheetError("The file is empty: no header row was found.")
    return RawSheet(headers=headers, rows=rows, decimal_comma=delimiter == ";", sheet_name=sheet_name,
                    other_sheets=other_sheets)


def _decode(content: bytes) -> str:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return content.decode("utf-16")
        except UnicodeDecodeError:
            raise SheetError(f"The file is not readable text. {NOT_A_SHEET}") from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")    # Excel's "CSV" on Windows


def _read_csv(content: bytes) -> tuple[Iterable[tuple[int, list[Any]]], str]:
    """The lines of the CSV, and the separator its columns were found to use."""
    text = _decode(content)
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    # A row's number is the row Excel shows, not the text line: a notes cell holding line breaks
    # spans several lines of the file but is one row.
    return enumerate(reader, start=1), dialect.delimiter


@dataclass(frozen=True)
class UnsavedFormula:
    """An XLSX cell holding a formula whose result was never saved (the file was written by a
    program that does not calculate): its value is unknown, not blank and not 0."""

    formula: str

    def __str__(self) -> str:
        return self.formula


UNSAVED_FORMULA = "formula without a saved value: open and save the file in Excel, or paste values"


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _read_xlsx(content: bytes) -> tuple[list[tuple[int, list[Any]]], str, tuple[str, ...]]:
    """The first worksheet's rows, read straight from the workbook's XML (a streaming parse: the
    values Excel saved, dates by their cell style, a formula without its saved result marked), its
    name and the names of the other visible sheets."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        path, date1904, names = _first_sheet(archive)
        strings = _shared_strings(archive)
        date_styles = _date_styles(archive)
        rows = list(_sheet_rows(archive.open(path), strings=strings, date_styles=date_styles, date1904=date1904))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, OSError) as exc:
        raise SheetError("The file could not be read as an Excel workbook (XLSX).") from exc
    return rows, names[0], tuple(names[1:])


def _first_sheet(archive: zipfile.ZipFile) -> tuple[str, bool, list[str]]:
    """The first sheet's path in the archive, whether dates count from 1904, and the names of the
    first sheet and of the other visible ones."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    properties = workbook.find(f"{_MAIN}workbookPr")
    date1904 = properties is not None and properties.get("date1904") in ("1", "true")
    sheets = workbook.findall(f"{_MAIN}sheets/{_MAIN}sheet")
    sheet = sheets[0]
    names = [sheet.get("name") or "Sheet1"] + [s.get("name") or "" for s in sheets[1:]
                                                if s.get("state") not in ("hidden", "veryHidden")]
    rel_id = sheet.get(f"{_REL}id")
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels.iter(f"{_PKG_REL}Relationship") if r.get("Id") == rel_id)
    return (target.lstrip("/") if target.startswith("/") else f"xl/{target}"), date1904, names


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    """The workbook's strings: plain or in formatted runs, without their phonetic guides."""
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings = []
    plain, run = f"{_MAIN}t", f"{_MAIN}r"
    for _, item in ElementTree.iterparse(archive.open("xl/sharedStrings.xml")):
        if item.tag == f"{_MAIN}si":
            strings.append("".join((child.text or "") if child.tag == plain else (child.findtext(plain) or "")
                                   for child in item if child.tag in (plain, run)))
            item.clear()
    return strings


def _date_styles(archive: zipfile.ZipFile) -> set[int]:
    """The indexes of cell styles whose number format is a date or a time."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

    if "xl/styles.xml" not in archive.namelist():
        return set()
    styles = ElementTree.fromstring(archive.read("xl/styles.xml"))
    formats = dict(BUILTIN_FORMATS)
    for fmt in styles.iter(f"{_MAIN}numFmt"):
        formats[int(fmt.get("numFmtId"))] = fmt.get("formatCode") or ""
    xfs = styles.find(f"{_MAIN}cellXfs")
    return {index for index, xf in enumerate(xfs if xfs is not None else [])
            if is_date_format(formats.get(int(xf.get("numFmtId") or 0), "General"))}


def _column_index(ref: str) -> int:
    index = 0
    for char in ref:
        if char.isdigit():
            break
        index = index * 26 + ord(char.upper()) - 64
    return index - 1


def _sheet_rows(stream, *, strings: list[str], date_styles: set[int], date1904: bool):
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

    epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
    row_tag, cell_tag, line = f"{_MAIN}row", f"{_MAIN}c", 0
    for _, element in ElementTree.iterparse(stream):
        if element.tag != row_tag:
            continue
        line = int(element.get("r") or line + 1)
        cells: list[Any] = []
        for cell in element.iter(cell_tag):
            ref = cell.get("r")
            position = _column_index(ref) if ref else len(cells)
            cells.extend([None] * (position - len(cells)))
            cells.append(_cell_value(cell, strings=strings, date_styles=date_styles, epoch=epoch,
                                     from_excel=from_excel))
        yield line, cells
        element.clear()


def _cell_value(cell, *, strings, date_styles, epoch, from_excel) -> Any:
    kind = cell.get("t", "n")
    value = cell.findtext(f"{_MAIN}v")
    formula = cell.find(f"{_MAIN}f")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{_MAIN}t"))
    if value is None or (value == "" and kind != "str"):
        return UnsavedFormula("=" + (formula.text or "")) if formula is not None else None
    if kind == "s":
        return strings[int(value)]
    if kind in ("str", "e"):
        return value
    if kind == "b":
        return value in ("1", "true")
    number = float(value) if any(c in value for c in ".eE") else int(value)
    if int(cell.get("s") or 0) in date_styles:
        return from_excel(number, epoch)
    return number
