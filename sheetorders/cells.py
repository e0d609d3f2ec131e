"""A cell's value as text, the one way every part of sheetorders reads cells."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

Cell = str | int | float | Decimal | bool | datetime | None


def cell_text(value: object) -> str:
    """A cell as text: stripped, whole floats without `.0`, None as ''."""
    if type(value) is str:  # most cells, first
        return value.strip()
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        # As a number, not as the panel spelled it: "0.09000" is the 0.09 the sheet reads back.
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()
