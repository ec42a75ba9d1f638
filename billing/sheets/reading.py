"""Reading a membership spreadsheet (CSV or XLSX): bytes in, header + cells out, with each row's
line number; blank rows dropped, a formula whose result was never saved marked as such. Pure
functions, no database. Which field each column holds: `billing.sheets.columns`."""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Iterable


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


# What a file that is not a spreadsheet starts with, so it is named in the refusal (by its content:
# a PDF renamed .csv is still a PDF).
_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel (.xls) or Word (.doc) file; save it as .xlsx or CSV"),
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"), (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"), (b"\x7fELF", "a program"), (b"MZ", "a program"),
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
    lines = _read_xlsx(content) if sniff_format(content) == "xlsx" else _read_csv(content)
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
    return RawSheet(headers=headers, rows=rows)


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


def _read_csv(content: bytes) -> Iterable[tuple[int, list[Any]]]:
    text = _decode(content)
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
