"""Sets up a Google spreadsheet as a template (`sheetorders.template`).

Four calls: the spreadsheet's metadata (its tabs, conditional formats, column groups), the
header row of an existing Orders tab, one `spreadsheets.batchUpdate` (tabs, grid sizes,
frozen rows, header styles, column widths and groups, validations, status colours, the
Services tab's filter), and one `values.batchUpdate` (headers, the estimate formulas, the
Services and Help tabs). Running it again changes nothing: tabs that exist are reused, a
validation replaces the one on the same cells, a rule or a group already there is not added
again, and the same values are written.

An Orders tab that already has other headers is refused: this sets up a sheet, it does not
rearrange one in use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sheetorders.cells import Cell, cell_text
from sheetorders.columns import LIST_FIELDS
from sheetorders.errors import UsageError
from sheetorders.sheets.google import GoogleSheetsBackend, quote_tab
from sheetorders.template import (
    ACTION_CHOICES,
    HELP_TAB,
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
    services_table,
    status_formula,
)
from sheetorders.template_xlsx import HEADER_FILLS, HEADER_FONT, MONEY_FORMAT, OWN_FILL, SERVICES_WIDTHS

METADATA_FIELDS = "sheets(properties,conditionalFormats,columnGroups)"
PIXELS_PER_WIDTH = 7  # an Excel width unit is about one character, about 7 pixels


@dataclass
class GoogleTemplateResult:
    key: str
    added_tabs: list[str] = field(default_factory=list)
    requests: int = 0  # spreadsheets.batchUpdate requests sent


def write_google_template(source: str, options: Mapping[str, Any], layout: Layout) -> GoogleTemplateResult:
    """Set up the spreadsheet `source` (a URL or key) with the template's tabs."""
    backend = GoogleSheetsBackend(source, ORDERS_TAB, options)
    # The backend's own authorised, retrying client and its error messages.
    http = backend._client()
    try:
        metadata = backend._call(
            "read the spreadsheet's tabs",
            http.fetch_sheet_metadata,
            backend.key,
            params={"fields": METADATA_FIELDS},
        )
        sheets = {s["properties"]["title"]: s for s in metadata.get("sheets", [])}
        if ORDERS_TAB in sheets:
            _check_headers(backend, layout)
        plan = _Plan(layout, sheets)
        requests = plan.requests()
        backend._call("set up the tabs", http.batch_update, backend.key, {"requests": requests})
        body = {"valueInputOption": "USER_ENTERED", "data": _values(layout)}
        backend._call("write the template", http.values_batch_update, backend.key, body)
        return GoogleTemplateResult(backend.key, plan.added, len(requests))
    finally:
        backend.close()


def _check_headers(backend: GoogleSheetsBackend, layout: Layout) -> None:
    http = backend._client()
    answer = backend._call(
        "read the header row",
        http.values_batch_get,
        backend.key,
        [f"{quote_tab(ORDERS_TAB)}!1:1"],
        params={"valueRenderOption": "FORMULA"},
    )
    ranges = answer.get("valueRanges") or [{}]
    headers = [cell_text(v) for v in (ranges[0].get("values") or [[]])[0]]
    while headers and not headers[-1]:
        headers.pop()
    if headers and headers != list(layout.names):
        raise UsageError(
            f"the {ORDERS_TAB} tab of spreadsheet {backend.key} already has other headers "
            f"({', '.join(headers[:8])}{'…' if len(headers) > 8 else ''}): sheetorders template sets "
            "up a new sheet; rename that tab, or use a new spreadsheet"
        )


# --- values ------------------------------------------------------------------------------


def _typed(value: Cell) -> Any:
    """A value as USER_ENTERED takes it: text stays text (a leading ' keeps `1/2` from being a
    date), numbers are numbers."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str):
        return "'" + value
    return value


def _values(layout: Layout) -> list[dict[str, Any]]:
    estimate = layout.letter("estimate")
    formulas = [[estimate_formula(layout, row)] for row in range(2, layout.last_row + 1)]
    return [
        {"range": f"{quote_tab(ORDERS_TAB)}!A1", "values": [[_typed(n) for n in layout.names]]},
        {"range": f"{quote_tab(ORDERS_TAB)}!{estimate}2:{estimate}{layout.last_row}", "values": formulas},
        {
            "range": f"{quote_tab(SERVICES_TAB)}!A1",
            "values": [[_typed(v) for v in row] for row in services_table(layout)],
        },
        {"range": f"{quote_tab(HELP_TAB)}!A1", "values": _help_values(layout)},
    ]


def _help_values(layout: Layout) -> list[list[Any]]:
    rows = help_rows(layout)
    width = max(len(row) for row in rows)
    return [[_typed(v) for v in row] + [""] * (width - len(row)) for row in rows]


# --- requests ----------------------------------------------------------------------------


def _colour(hex_colour: str) -> dict[str, float]:
    red, green, blue = (int(hex_colour[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return {"red": round(red, 4), "green": round(green, 4), "blue": round(blue, 4)}


def _header_format(fill: str) -> dict[str, Any]:
    return {
        "userEnteredFormat": {
            "backgroundColor": _colour(fill),
            "textFormat": {"bold": True, "foregroundColor": _colour(HEADER_FONT)},
        }
    }


class _Plan:
    """The batchUpdate requests for one spreadsheet, given what it already has."""

    def __init__(self, layout: Layout, sheets: Mapping[str, Mapping[str, Any]]) -> None:
        self.layout = layout
        self.sheets = sheets
        self.added: list[str] = []
        taken = {int(s["properties"]["sheetId"]) for s in sheets.values()}
        self.ids: dict[str, int] = {}
        for title in (ORDERS_TAB, SERVICES_TAB, HELP_TAB):
            if title in sheets:
                self.ids[title] = int(sheets[title]["properties"]["sheetId"])
            else:
                self.ids[title] = max(taken | {0}) + 1
                taken.add(self.ids[title])

    def requests(self) -> list[dict[str, Any]]:
        orders = self.ids[ORDERS_TAB]
        services = len(services_table(self.layout))
        requests = [
            *self._tabs(),
            self._grid(ORDERS_TAB, self.layout.last_row, len(self.layout.columns), frozen_columns=True),
            self._grid(SERVICES_TAB, services, len(SERVICES_HEADERS), exact=True),
            self._grid(HELP_TAB, len(help_rows(self.layout)), 3),
            *self._orders_formats(orders),
            *self._groups(orders),
            *self._validations(orders),
            *self._status_colours(orders),
            *self._services_formats(self.ids[SERVICES_TAB], services),
        ]
        return requests

    def _tabs(self) -> list[dict[str, Any]]:
        requests = []
        for index, title in enumerate((ORDERS_TAB, SERVICES_TAB, HELP_TAB)):
            if title not in self.sheets:
                self.added.append(title)
                properties = {"sheetId": self.ids[title], "title": title, "index": index}
                requests.append({"addSheet": {"properties": properties}})
        return requests

    def _grid(
        self, title: str, rows: int, columns: int, *, frozen_columns: bool = False, exact: bool = False
    ) -> dict[str, Any]:
        """The tab's grid: at least `rows` x `columns` (exactly, with `exact`: no stale rows)."""
        current = self.sheets.get(title, {}).get("properties", {}).get("gridProperties", {})
        if not exact:
            rows = max(rows, int(current.get("rowCount", 0)))
            columns = max(columns, int(current.get("columnCount", 0)))
        grid: dict[str, Any] = {"rowCount": rows, "columnCount": columns, "frozenRowCount": 1}
        fields = "gridProperties(rowCount,columnCount,frozenRowCount)"
        if frozen_columns:
            grid["frozenColumnCount"] = self.layout.number("service")
            fields = "gridProperties(rowCount,columnCount,frozenRowCount,frozenColumnCount)"
        properties = {"sheetId": self.ids[title], "gridProperties": grid}
        return {"updateSheetProperties": {"properties": properties, "fields": fields}}

    def _range(self, sheet: int, column: int, rows: tuple[int, int], width: int = 1) -> dict[str, int]:
        """Column `column` (0-based), rows [start, end) (0-based)."""
        return {
            "sheetId": sheet,
            "startRowIndex": rows[0],
            "endRowIndex": rows[1],
            "startColumnIndex": column,
            "endColumnIndex": column + width,
        }

    def _data_rows(self) -> tuple[int, int]:
        return 1, self.layout.last_row

    def _orders_formats(self, sheet: int) -> list[dict[str, Any]]:
        requests: list[dict[str, Any]] = []
        for index, column in enumerate(self.layout.columns):
            fill = HEADER_FILLS.get(column.role, OWN_FILL)
            requests.append(_repeat(self._range(sheet, index, (0, 1)), _header_format(fill)))
            requests.append(_width(sheet, index, column.width))
            if column.name in LIST_FIELDS or column.name == "error":
                wrap = {"userEnteredFormat": {"wrapStrategy": "WRAP"}}
                requests.append(_repeat(self._range(sheet, index, self._data_rows()), wrap))
        money = {"userEnteredFormat": {"numberFormat": {"type": "NUMBER", "pattern": MONEY_FORMAT}}}
        estimate = self.layout.number("estimate") - 1
        requests.append(_repeat(self._range(sheet, estimate, self._data_rows()), money))
        return requests

    def _groups(self, sheet: int) -> list[dict[str, Any]]:
        """A group for each run of grouped columns that has none yet; new hidden ones collapsed."""
        existing = self.sheets.get(ORDERS_TAB, {}).get("columnGroups", [])
        requests: list[dict[str, Any]] = []
        for start, end, hidden in _runs(self.layout):
            span = {"sheetId": sheet, "dimension": "COLUMNS", "startIndex": start, "endIndex": end}
            if any(
                g["range"].get("startIndex") == start and g["range"].get("endIndex") == end for g in existing
            ):
                continue
            requests.append({"addDimensionGroup": {"range": span}})
            if hidden:
                group = {"range": span, "depth": 1, "collapsed": True}
                requests.append({"updateDimensionGroup": {"dimensionGroup": group, "fields": "collapsed"}})
        return requests

    def _validations(self, sheet: int) -> list[dict[str, Any]]:
        layout = self.layout
        requests = []
        for index, column in enumerate(layout.columns):
            _, text = header_prompt(layout, column)
            rule = {
                "condition": {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": "=TRUE"}]},
                "inputMessage": text,
                "strict": False,
            }
            requests.append(_validation(self._range(sheet, index, (0, 1)), rule))
        rows = self._data_rows()
        source = {"type": "ONE_OF_RANGE", "values": [{"userEnteredValue": "=" + dropdown_source(layout)}]}
        requests.append(
            _validation(
                self._range(sheet, layout.number("service") - 1, rows),
                {"condition": source, "strict": False, "showCustomUi": True},
            )
        )
        for name, choices, strict in (("panel", layout.panels, True), ("action", ACTION_CHOICES, False)):
            if layout.has(name):
                condition = {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": c} for c in choices]}
                rule = {"condition": condition, "strict": strict, "showCustomUi": True}
                requests.append(_validation(self._range(sheet, layout.number(name) - 1, rows), rule))
        quantity = self._quantity_rule()
        if quantity is not None:
            requests.append(_validation(self._range(sheet, layout.number("quantity") - 1, rows), quantity))
        return requests

    def _quantity_rule(self) -> dict[str, Any] | None:
        limits = quantity_limits(self.layout)
        if limits is None:
            return None
        cell = f"{self.layout.letter('quantity')}2"
        formula = f"=AND(ISNUMBER({cell}),{cell}=INT({cell}),{cell}>={limits[0]},{cell}<={limits[1]})"
        return {
            "condition": {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]},
            "inputMessage": quantity_message(self.layout),
            "strict": True,
        }

    def _status_colours(self, sheet: int) -> list[dict[str, Any]]:
        """A rule per colour, unless the same formula already colours the same cells."""
        cells = self._range(sheet, self.layout.number("status") - 1, self._data_rows())
        existing = {
            (_range_key(rule.get("ranges") or []), _rule_formula(rule))
            for rule in self.sheets.get(ORDERS_TAB, {}).get("conditionalFormats", [])
        }
        requests: list[dict[str, Any]] = []
        for fill, text, statuses in STATUS_COLOURS:
            formula = "=" + status_formula(self.layout, statuses)
            if (_range_key([cells]), formula) in existing:
                continue
            condition = {"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": formula}]}
            style = {"backgroundColor": _colour(fill), "textFormat": {"foregroundColor": _colour(text)}}
            rule = {"ranges": [cells], "booleanRule": {"condition": condition, "format": style}}
            requests.append({"addConditionalFormatRule": {"rule": rule, "index": len(requests)}})
        return requests

    def _services_formats(self, sheet: int, rows: int) -> list[dict[str, Any]]:
        header = self._range(sheet, 0, (0, 1), len(SERVICES_HEADERS))
        requests = [_repeat(header, _header_format(HEADER_FILLS[OUTPUT]))]
        for index, name in enumerate(SERVICES_HEADERS):
            width = SERVICES_WIDTHS.get(name, max(8, len(name) + 3))
            # The key is the estimate formula's lookup key, not for people: hidden.
            requests.append(_width(sheet, index, width, hidden=name == "key"))
        rate = SERVICES_HEADERS.index("rate")
        rate_format = {"userEnteredFormat": {"numberFormat": {"type": "NUMBER", "pattern": "0.00#####"}}}
        requests.append(_repeat(self._range(sheet, rate, (1, rows)), rate_format))
        filtered = self._range(sheet, 0, (0, rows), len(SERVICES_HEADERS))
        requests.append({"setBasicFilter": {"filter": {"range": filtered}}})
        return requests


def _runs(layout: Layout) -> list[tuple[int, int, bool]]:
    """(start, end, hidden) of each run of grouped columns, 0-based, end excluded."""
    runs: list[tuple[int, int, bool]] = []
    for index, column in enumerate(layout.columns):
        if not column.level:
            continue
        if runs and runs[-1][1] == index and runs[-1][2] == column.hidden:
            runs[-1] = (runs[-1][0], index + 1, column.hidden)
        else:
            runs.append((index, index + 1, column.hidden))
    return runs


def _repeat(grid_range: Mapping[str, int], cell: Mapping[str, Any]) -> dict[str, Any]:
    fields = ",".join(f"userEnteredFormat.{name}" for name in cell["userEnteredFormat"])
    return {"repeatCell": {"range": dict(grid_range), "cell": dict(cell), "fields": fields}}


def _width(sheet: int, index: int, width: float, *, hidden: bool = False) -> dict[str, Any]:
    span = {"sheetId": sheet, "dimension": "COLUMNS", "startIndex": index, "endIndex": index + 1}
    properties: dict[str, Any] = {"pixelSize": int(width * PIXELS_PER_WIDTH)}
    fields = "pixelSize"
    if hidden:
        properties["hiddenByUser"] = True
        fields = "pixelSize,hiddenByUser"
    return {"updateDimensionProperties": {"range": span, "properties": properties, "fields": fields}}


def _validation(grid_range: Mapping[str, int], rule: Mapping[str, Any]) -> dict[str, Any]:
    return {"setDataValidation": {"range": dict(grid_range), "rule": dict(rule)}}


def _range_key(ranges: Sequence[Mapping[str, Any]]) -> tuple[tuple[int, ...], ...]:
    keys = ("sheetId", "startRowIndex", "endRowIndex", "startColumnIndex", "endColumnIndex")
    return tuple(tuple(int(r.get(k, 0)) for k in keys) for r in ranges)


def _rule_formula(rule: Mapping[str, Any]) -> str:
    values = rule.get("booleanRule", {}).get("condition", {}).get("values") or [{}]
    return str(values[0].get("userEnteredValue", ""))
