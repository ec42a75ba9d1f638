"""Spreadsheet-safe CSV cells (OWASP "CSV injection"): text that a spreadsheet would read as a
formula — starting with = + - @, a tab or a carriage return — is prefixed with a single quote, so
member numbers and names that came in from an imported sheet open as text."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: list[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
