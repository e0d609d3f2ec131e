"""Sheet backends: one module per kind of spreadsheet, all behind `SheetBackend`."""

from sheetorders.sheets.base import Cell, CellWrite, SheetBackend, SheetTable, open_backend

__all__ = ["Cell", "CellWrite", "SheetBackend", "SheetTable", "open_backend"]
