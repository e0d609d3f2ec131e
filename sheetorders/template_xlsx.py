"""Writes a template (`sheetorders.template`) as an .xlsx workbook, with openpyxl."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.formatting.rule import Rule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.differential import DifferentialStyle
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheetorders.columns import LIST_FIELDS
from sheetorders.template import (
    ACTION_CHOICES,
    COMPUTED,
    HELP_TAB,
    INPUT,
    ORDERS_TAB,
    OUTPUT,
    SERVICES_HEADERS,
    SERVICES_TAB,
    STATUS_COLOURS,
    Layout,
    dropdown_source,
    estimate_formula,
    header_prompt,
    help_rows,
    quantity_limits,
    quantity_message,
    services_column,
    services_table,
    status_formula,
)

# Header fills by role: what people fill, what sheetorders writes, what the sheet computes.
HEADER_FILLS = {INPUT: "305496", OUTPUT: "808080", COMPUTED: "548235"}
OWN_FILL = "BF8F00"
HEADER_FONT = "FFFFFF"
MONEY_FORMAT = "0.00###"
SERVICES_WIDTHS = {"name": 40, "category": 22, "type": 22, "needs": 30, "optional": 30, "entry": 55}


def write_template(path: Path, layout: Layout, rows: Iterable[Mapping[str, Any]] = ()) -> Path:
    """Write the template to `path` (replacing it at once: never a half-written file).
    `rows` are filled in below the header, by column name (the demo's example orders)."""
    workbook = Workbook()
    orders = workbook.active
    assert isinstance(orders, Worksheet)  # a new workbook has one worksheet
    orders.title = ORDERS_TAB
    _orders_sheet(orders, layout, list(rows))
    _services_sheet(workbook.create_sheet(SERVICES_TAB), layout)
    _help_sheet(workbook.create_sheet(HELP_TAB), layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Beside the file, so that the rename is atomic; created as any file is (umask applies).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        workbook.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


# --- Orders ------------------------------------------------------------------------------


def _fill(colour: str) -> PatternFill:
    return PatternFill("solid", start_color=colour, end_color=colour)


def _orders_sheet(sheet: Worksheet, layout: Layout, rows: list[Mapping[str, Any]]) -> None:
    sheet.append(list(layout.names))
    wrap = Alignment(wrap_text=True, vertical="top")
    for number, column in enumerate(layout.columns, start=1):
        cell = sheet.cell(row=1, column=number)
        cell.font = Font(bold=True, color=HEADER_FONT)
        cell.fill = _fill(HEADER_FILLS.get(column.role, OWN_FILL))
        cell.alignment = Alignment(vertical="center")
        dimension = sheet.column_dimensions[get_column_letter(number)]
        dimension.width = column.width
        dimension.outline_level = column.level
        dimension.hidden = column.hidden
        if column.name in LIST_FIELDS or column.name == "error":
            # A column style: what people type later wraps too, and empty cells are not stored.
            dimension.alignment = wrap
    _collapse_buttons(sheet, layout)
    sheet.freeze_panes = f"{get_column_letter(layout.number('service') + 1)}2"
    for number, row in enumerate(rows, start=2):
        for index, name in enumerate(layout.names, start=1):
            if row.get(name) is not None:
                sheet.cell(row=number, column=index, value=row[name]).alignment = wrap
    estimate = layout.number("estimate")
    for number in range(2, layout.last_row + 1):
        cell = sheet.cell(row=number, column=estimate, value=estimate_formula(layout, number))
        cell.number_format = MONEY_FORMAT
    _header_prompts(sheet, layout)
    _validations(sheet, layout)
    _status_colours(sheet, layout)


def _collapse_buttons(sheet: Worksheet, layout: Layout) -> None:
    """Mark the column after each collapsed group, where Excel shows its [+] button."""
    for number, column in enumerate(layout.columns, start=1):
        after = layout.columns[number] if number < len(layout.columns) else None
        if column.hidden and (after is None or not after.hidden):
            sheet.column_dimensions[get_column_letter(number + 1)].collapsed = True


def _header_prompts(sheet: Worksheet, layout: Layout) -> None:
    for number, column in enumerate(layout.columns, start=1):
        title, text = header_prompt(layout, column)
        prompt = DataValidation(showInputMessage=True, promptTitle=title, prompt=text, allow_blank=True)
        prompt.add(sheet.cell(row=1, column=number).coordinate)
        sheet.add_data_validation(prompt)


def _column_range(layout: Layout, name: str) -> str:
    letter = layout.letter(name)
    return f"{letter}2:{letter}{layout.last_row}"


def _validations(sheet: Worksheet, layout: Layout) -> None:
    # Any text is allowed in service (an ID typed by hand); the list is a help, not a rule.
    service = DataValidation(type="list", formula1=dropdown_source(layout), allow_blank=True)
    service.add(_column_range(layout, "service"))
    sheet.add_data_validation(service)
    if layout.has("panel"):
        panels = DataValidation(
            type="list",
            formula1='"' + ",".join(layout.panels) + '"',
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="panel",
            error=f"Pick one of the configured panels: {', '.join(layout.panels)}.",
        )
        panels.add(_column_range(layout, "panel"))
        sheet.add_data_validation(panels)
    if layout.has("action"):
        action = DataValidation(
            type="list",
            formula1='"' + ",".join(ACTION_CHOICES) + '"',
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="warning",
            errorTitle="action",
            error="Type refill or cancel.",
        )
        action.add(_column_range(layout, "action"))
        sheet.add_data_validation(action)
    limits = quantity_limits(layout)
    if limits is not None:
        message = quantity_message(layout)
        quantity = DataValidation(
            type="whole",
            operator="between",
            formula1=str(limits[0]),
            formula2=str(limits[1]),
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="quantity",
            error=message,
            showInputMessage=True,
            promptTitle="quantity",
            prompt=message,
        )
        quantity.add(_column_range(layout, "quantity"))
        sheet.add_data_validation(quantity)


def _status_colours(sheet: Worksheet, layout: Layout) -> None:
    cells = _column_range(layout, "status")
    for fill, text, statuses in STATUS_COLOURS:
        style = DifferentialStyle(fill=_fill(fill), font=Font(color=text))
        rule = Rule(type="expression", dxf=style, formula=[status_formula(layout, statuses)])
        sheet.conditional_formatting.add(cells, rule)


# --- Services and Help ------------------------------------------------------------------


def _services_sheet(sheet: Worksheet, layout: Layout) -> None:
    table = services_table(layout)
    for row in table:
        sheet.append(row)
    for number, name in enumerate(SERVICES_HEADERS, start=1):
        cell = sheet.cell(row=1, column=number)
        cell.font = Font(bold=True, color=HEADER_FONT)
        cell.fill = _fill(HEADER_FILLS[OUTPUT])
        sheet.column_dimensions[get_column_letter(number)].width = SERVICES_WIDTHS.get(
            name, max(8, len(name) + 3)
        )
    rate = services_column("rate")
    for cell in sheet[rate][1:]:
        cell.number_format = "0.00#####"
    # The key is the formula's, not people's: a hidden column.
    sheet.column_dimensions[services_column("key")].hidden = True
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(SERVICES_HEADERS))}{len(table)}"


def _help_sheet(sheet: Worksheet, layout: Layout) -> None:
    for row in help_rows(layout):
        sheet.append(row)
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 90
    sheet.column_dimensions["C"].width = 50
    for cell in sheet["A"]:
        cell.font = Font(bold=True)
