"""A local fake of the Google Sheets API v4 (and Google's OAuth2 token endpoint) over real HTTP.

It speaks enough of the real protocol for gspread + google-auth to work against it unchanged:
the service-account JWT-bearer token exchange, bearer-token checks, values get / batchGet /
update / batchUpdate with the render and input options, spreadsheet metadata and the
spreadsheet batchUpdate requests sheetorders sends (tabs, grid size, validations, conditional
formats, cell formats, column sizes and groups, basic filters, developer metadata on tabs),
Google's JSON error bodies and grid limits. Faults (429 with Retry-After, 5xx, dropped
connections, slow answers) are injected deterministically.

    with FakeSheetsServer() as server:
        key = server.create_spreadsheet("Orders", sheets={"Orders": [["link", "quantity"], ["a", 10]]})
        options = google_options(server, tmp_path)  # service-account key + endpoint for the backend
        GoogleSheetsBackend(key, "Orders", options, sleep=lambda s: None).read()
        assert server.calls == Counter({"token": 1, "values.batchGet": 1})

Cells are stored as Python values; a formula is stored as its "=..." text (kept apart from a
RAW-written string that merely starts with "="). Every request is counted in `server.calls`
by kind ("token", "metadata", "values.get", "values.batchGet", "values.update",
"values.batchUpdate", "batchUpdate", "unknown") and kept in `server.requests`, except
google-auth's background "allowedLocations" lookup, counted in `server.background_calls`
because it is asynchronous.
"""

from __future__ import annotations

import ast
import base64
import copy
import itertools
import json
import operator
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sheetorders.testing.servers import ClosingHTTPServer

__all__ = [
    "FakeSheetsServer",
    "RecordedRequest",
    "google_options",
    "make_authorized_user_file",
    "make_service_account_file",
]

DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SERVICE_ACCOUNT_EMAIL = "sheetorders-test@sheetorders-test.iam.gserviceaccount.com"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FAULT_MESSAGES = {
    429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' of service "
    "'sheets.googleapis.com' for consumer 'project_number:000000000000'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The service is currently unavailable.",
}
_MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_INVALID_CREDENTIAL = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


# --- values ------------------------------------------------------------------


class _Formula(str):
    """A cell that holds a formula (as opposed to a string that happens to start with "=")."""


_ARITHMETIC: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(formula: str) -> Any:
    """Arithmetic on literals only ("=1+2*3"); anything else evaluates to an error value."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITHMETIC:
            return _ARITHMETIC[type(node.op)](walk(node.operand))
        raise ValueError("unsupported")

    try:
        return walk(ast.parse(formula[1:].replace("^", "**"), mode="eval").body)
    except ZeroDivisionError:
        return "#DIV/0!"
    except (SyntaxError, ValueError, TypeError, OverflowError):
        return "#NAME?"


def _date_serial(value: datetime | date) -> float:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    delta = value.replace(tzinfo=None) - datetime(1899, 12, 30)
    return delta.days + delta.seconds / 86400


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _render(value: Any, value_render: str, date_render: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, _Formula):
        if value_render == "FORMULA":
            return str(value)
        value = _evaluate(value)
    if isinstance(value, (datetime, date)):
        if value_render == "FORMATTED_VALUE" or date_render == "FORMATTED_STRING":
            if isinstance(value, datetime):
                return value.strftime("%Y-%m-%d %H:%M:%S")
            return value.isoformat()
        return _plain_number(_date_serial(value))
    if value_render == "FORMATTED_VALUE":
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, float):
            return format(_plain_number(value), ".15g") if not value.is_integer() else str(int(value))
        return str(value)
    return _plain_number(value)


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _user_entered(value: Any) -> Any:
    """What Sheets stores for a value typed by a person (valueInputOption USER_ENTERED)."""
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    if value.startswith("'"):
        return value[1:]
    if value.startswith("=") and len(value) > 1:
        return _Formula(value)
    text = value.strip()
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return value


def _raw(value: Any) -> Any:
    return None if value == "" else value


def _seed(value: Any) -> Any:
    """A value given to create_spreadsheet / insert_rows: "=..." is a formula, as if typed."""
    if isinstance(value, str) and value.startswith("=") and len(value) > 1:
        return _Formula(value)
    return None if value == "" else value


def _inspect(value: Any) -> Any:
    return str(value) if isinstance(value, _Formula) else value


def _trimmed(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for row in rows:
        end = len(row)
        while end and row[end - 1] in (None, ""):
            end -= 1
        out.append(row[:end])
    while out and not out[-1]:
        out.pop()
    return out


# --- A1 notation -------------------------------------------------------------


def column_letter(column: int) -> str:
    """1 -> A, 27 -> AA."""
    letters = ""
    while column > 0:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_number(letters: str) -> int:
    """A -> 1, AA -> 27."""
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - 64
    return number


_A1_END = re.compile(r"([A-Za-z]{0,3})([0-9]*)")


@dataclass
class _Bounds:
    """1-based inclusive bounds; None on an end means "to the edge of the grid"."""

    row0: int = 1
    col0: int = 1
    row1: int | None = None
    col1: int | None = None
    single: bool = False  # one cell given ("C5"): a write may spill from it


def _parse_a1(text: str) -> _Bounds | None:
    parts = text.split(":")
    if len(parts) > 2 or not text:
        return None
    ends = []
    for part in parts:
        match = _A1_END.fullmatch(part)
        if not match or not part:
            return None
        letters, digits = match.groups()
        if digits and int(digits) == 0:
            return None
        ends.append((column_number(letters) if letters else None, int(digits) if digits else None))
    if len(ends) == 1:
        col, row = ends[0]
        if col is None or row is None:  # "A" or "5" alone is a sheet name, not a range
            return None
        return _Bounds(row, col, row, col, single=True)
    (c0, r0), (c1, r1) = ends
    if (c0 is None) != (c1 is None) and r0 is None:
        return None
    bounds = _Bounds(r0 or 1, c0 or 1, r1, c1)
    if r0 is None and r1 is not None:  # "A:B5" is not a thing
        return None
    if bounds.row1 is not None and bounds.row1 < bounds.row0:
        bounds.row0, bounds.row1 = bounds.row1, bounds.row0
    if bounds.col1 is not None and bounds.col1 < bounds.col0:
        bounds.col0, bounds.col1 = bounds.col1, bounds.col0
    return bounds


def _split_range(text: str) -> tuple[str | None, str | None]:
    """Split a range into tab title and A1 part: `'My Tab'!A1:B2` -> ("My Tab", "A1:B2").

    Without "!", the title is None and the text is returned as is: it is a tab name or an
    A1 range of the first visible tab, which only the spreadsheet can tell.
    """
    if text.startswith("'"):
        chars: list[str] = []
        i = 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1 : i + 2] == "'":
                    chars.append("'")
                    i += 2
                    continue
                rest = text[i + 1 :]
                if rest == "":
                    return "".join(chars), None
                if rest.startswith("!"):
                    return "".join(chars), rest[1:]
                raise _ApiError(400, f"Unable to parse range: {text}")
            chars.append(text[i])
            i += 1
        raise _ApiError(400, f"Unable to parse range: {text}")
    if "!" in text:
        title, a1 = text.split("!", 1)
        return title, a1
    return None, text


def quote_title(title: str) -> str:
    """How Google names a tab in a range: bare when simple, else single-quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) and not _parse_a1(title):
        return title
    return "'" + title.replace("'", "''") + "'"


# --- state -------------------------------------------------------------------


@dataclass
class _Tab:
    sheet_id: int
    title: str
    index: int
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int = DEFAULT_ROWS
    column_count: int = DEFAULT_COLUMNS
    hidden: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # other sheet properties set by requests
    data_validations: list[dict[str, Any]] = field(default_factory=list)
    conditional_formats: list[dict[str, Any]] = field(default_factory=list)
    formats: list[dict[str, Any]] = field(default_factory=list)  # repeatCell requests, latest per range
    dimensions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # pixelSize, hidden...
    column_groups: list[dict[str, Any]] = field(default_factory=list)
    basic_filter: dict[str, Any] | None = None
    protected_ranges: list[dict[str, Any]] = field(default_factory=list)  # as the API shows them

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count},
        }
        if self.hidden:
            props["hidden"] = True
        for key, value in self.extra.items():
            if key == "gridProperties":
                props["gridProperties"] = {**value, **props["gridProperties"]}
            else:
                props[key] = value
        return props

    def get(self, row: int, column: int) -> Any:
        if row - 1 < len(self.rows) and column - 1 < len(self.rows[row - 1]):
            return self.rows[row - 1][column - 1]
        return None

    def set(self, row: int, column: int, value: Any) -> None:
        while len(self.rows) < row:
            self.rows.append([])
        cells = self.rows[row - 1]
        while len(cells) < column:
            cells.append(None)
        cells[column - 1] = value


@dataclass
class _Spreadsheet:
    spreadsheet_id: str
    title: str
    tabs: list[_Tab]
    shared: bool = True
    editable: bool = True  # False: shared as Viewer (reads answer, writes get 403)
    next_sheet_id: int = 1
    developer_metadata: list[dict[str, Any]] = field(default_factory=list)  # spreadsheet-scoped IDs
    next_metadata_id: int = 1

    def tab(self, title: str) -> _Tab | None:
        return next((t for t in self.tabs if t.title == title), None)

    def tab_by_id(self, sheet_id: int) -> _Tab | None:
        return next((t for t in self.tabs if t.sheet_id == sheet_id), None)

    def first_visible(self) -> _Tab:
        ordered = sorted(self.tabs, key=lambda t: t.index)
        return next((t for t in ordered if not t.hidden), ordered[0])


class _ApiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, HTTPStatus(code).name)


@dataclass
class _Fault:
    status: int | None
    remaining: int
    retry_after: float | None
    kind: str | None
    delay: float
    disconnect: bool
    message: str | None
    edit: Callable[[], None] | None = None


@dataclass(frozen=True)
class _PlannedWrite:
    """One range of a values write, checked and ready to apply."""

    tab: _Tab
    row0: int
    col0: int
    values: list[list[Any]]
    height: int
    width: int
    updated_range: str


class _Headers(Protocol):
    """A request's headers: what the handler gets (an email Message) or any mapping."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (bodies are kept: tests only)."""

    method: str
    path: str
    kind: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


_DISCONNECT = object()


# --- the server ----------------------------------------------------------------


class FakeSheetsServer:
    """An in-memory Google Sheets API v4 on 127.0.0.1, for tests. Use as a context manager."""

    def __init__(self, *, token_lifetime: int = 3600) -> None:
        self.token_lifetime = token_lifetime
        self.calls: Counter[str] = Counter()
        self.background_calls: Counter[str] = Counter()  # google-auth's asynchronous lookups
        self.requests: list[RecordedRequest] = []
        self.token_grants: list[dict[str, Any]] = []  # decoded JWT claims / refresh grants seen
        self.token_error: tuple[str, str] | None = None  # (error, error_description) to answer /token
        self._spreadsheets: dict[str, _Spreadsheet] = {}
        self._tokens: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeSheetsServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
            self._httpd.fake = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.stop()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None

    def __enter__(self) -> FakeSheetsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeSheetsServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # data

    def create_spreadsheet(
        self,
        title: str = "Orders",
        sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None,
        *,
        shared: bool = True,
        spreadsheet_id: str | None = None,
        row_count: int | None = None,
        column_count: int | None = None,
    ) -> str:
        """Add a spreadsheet; returns its key. `shared=False` answers 403 to every call on it.

        Each tab's grid is at least 1000 x 26 (Google's default) and fits its rows, unless
        `row_count` / `column_count` say otherwise.
        """
        key = spreadsheet_id or secrets.token_urlsafe(33)
        tabs = []
        for index, (name, rows) in enumerate((sheets or {"Sheet1": []}).items()):
            stored = [[_seed(v) for v in row] for row in rows]
            width = max((len(r) for r in stored), default=0)
            tabs.append(
                _Tab(
                    sheet_id=0 if index == 0 else 1000 + index,
                    title=name,
                    index=index,
                    rows=stored,
                    row_count=row_count or max(DEFAULT_ROWS, len(stored)),
                    column_count=column_count or max(DEFAULT_COLUMNS, width),
                )
            )
        with self._lock:
            self._spreadsheets[key] = _Spreadsheet(key, title, tabs, shared=shared, next_sheet_id=2000)
        return key

    def share(self, spreadsheet_id: str, shared: bool = True, *, editable: bool = True) -> None:
        """Share the spreadsheet (as Editor, or as Viewer with `editable=False`), or not."""
        with self._lock:
            self._spreadsheets[spreadsheet_id].shared = shared
            self._spreadsheets[spreadsheet_id].editable = editable

    def values(self, spreadsheet_id: str, tab: str) -> list[list[Any]]:
        """The tab's cells as Python values (formulas as "=..." text), trailing empties trimmed."""
        with self._lock:
            found = self._tab(spreadsheet_id, tab)
            return _trimmed([[_inspect(v) for v in row] for row in found.rows])

    def insert_rows(self, spreadsheet_id: str, tab: str, at_row: int, rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` so that the first becomes sheet row `at_row` (a person's edit)."""
        with self._lock:
            found = self._tab(spreadsheet_id, tab)
            while len(found.rows) < at_row - 1:
                found.rows.append([])
            found.rows[at_row - 1 : at_row - 1] = [[_seed(v) for v in row] for row in rows]
            found.row_count += len(rows)

    def delete_rows(self, spreadsheet_id: str, tab: str, at_row: int, count: int = 1) -> None:
        """Delete `count` rows from sheet row `at_row` on (a person's edit); the rows below move up."""
        with self._lock:
            found = self._tab(spreadsheet_id, tab)
            del found.rows[at_row - 1 : at_row - 1 + count]
            found.row_count -= count

    def protect(
        self,
        spreadsheet_id: str,
        tab: str,
        grid: Mapping[str, int] | None = None,
        *,
        caller_can_edit: bool = False,
        warning_only: bool = False,
        unprotected: Sequence[Mapping[str, int]] = (),
    ) -> None:
        """Protect a range of the tab as its owner would (`grid`: GridRange indices, 0-based and
        end-exclusive, any of them left out for no bound; None: the whole tab), with holes
        `unprotected`. A write of the caller into it is refused unless `caller_can_edit` (an
        editor of the range) or `warning_only`."""
        with self._lock:
            found = self._tab(spreadsheet_id, tab)

            def with_id(bounds: Mapping[str, int] | None) -> dict[str, Any]:
                return {"sheetId": found.sheet_id, **(bounds or {})}

            entry: dict[str, Any] = {
                "protectedRangeId": 1000 + len(found.protected_ranges),
                "range": with_id(grid),
                "requestingUserCanEdit": caller_can_edit,
            }
            if warning_only:
                entry["warningOnly"] = True
            if unprotected:
                entry["unprotectedRanges"] = [with_id(hole) for hole in unprotected]
            found.protected_ranges.append(entry)

    def let_edit(self, spreadsheet_id: str, tab: str) -> None:
        """Make the caller an editor of every protected range of the tab."""
        with self._lock:
            for entry in self._tab(spreadsheet_id, tab).protected_ranges:
                entry["requestingUserCanEdit"] = True

    def set_cell(self, spreadsheet_id: str, tab: str, row: int, column: int, value: Any) -> None:
        """Set one cell as a person typing it would ("=..." is a formula)."""
        with self._lock:
            self._tab(spreadsheet_id, tab).set(row, column, _seed(value))

    def is_formula(self, spreadsheet_id: str, tab: str, row: int, column: int) -> bool:
        """Whether the cell holds a formula (not a string that merely starts with "=")."""
        with self._lock:
            return isinstance(self._tab(spreadsheet_id, tab).get(row, column), _Formula)

    def sheet_properties(self, spreadsheet_id: str, tab: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).properties())

    def data_validations(self, spreadsheet_id: str, tab: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).data_validations)

    def conditional_formats(self, spreadsheet_id: str, tab: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).conditional_formats)

    def cell_formats(self, spreadsheet_id: str, tab: str) -> list[dict[str, Any]]:
        """The repeatCell requests applied to the tab: {range, cell, fields}, the latest per range."""
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).formats)

    def column_properties(self, spreadsheet_id: str, tab: str) -> dict[int, dict[str, Any]]:
        """Column index (0-based) -> the properties set by updateDimensionProperties."""
        with self._lock:
            dimensions = self._tab(spreadsheet_id, tab).dimensions
            return {index: dict(props) for (kind, index), props in dimensions.items() if kind == "COLUMNS"}

    def column_groups(self, spreadsheet_id: str, tab: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).column_groups)

    def basic_filter(self, spreadsheet_id: str, tab: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._tab(spreadsheet_id, tab).basic_filter)

    def developer_metadata(self, spreadsheet_id: str, tab: str | None = None) -> list[dict[str, Any]]:
        """The spreadsheet's developer metadata as the API returns it (only `tab`'s, when named)."""
        with self._lock:
            sheet = self._spreadsheets[spreadsheet_id]
            found = sheet.developer_metadata
            if tab is not None:
                sheet_id = self._tab(spreadsheet_id, tab).sheet_id
                found = [m for m in found if m["location"].get("sheetId") == sheet_id]
            return copy.deepcopy(found)

    def tabs(self, spreadsheet_id: str) -> list[str]:
        with self._lock:
            return [t.title for t in sorted(self._spreadsheets[spreadsheet_id].tabs, key=lambda t: t.index)]

    # faults and bookkeeping

    def fail_next(
        self,
        status: int | None = 429,
        count: int = 1,
        retry_after: float | None = None,
        *,
        kind: str | None = None,
        delay: float = 0.0,
        disconnect: bool = False,
        message: str | None = None,
        edit: Callable[[], None] | None = None,
    ) -> None:
        """Make the next `count` API requests (of `kind`, e.g. "values.batchGet"; default any
        but "token") fail with `status`, optionally sending `Retry-After: retry_after`.

        `delay` waits before answering (for timeouts; with `status=None` the request then
        succeeds); `disconnect` closes the connection without an answer. `edit` runs once the
        request is handled and before it is answered: a person's edit at that moment, e.g.
        `edit=lambda: fake.insert_rows(key, "Orders", 2, [["new"]])` (after the write of a
        request that succeeds, or instead of the write of one that fails).
        """
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, kind, delay, disconnect, message, edit))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    def expire_tokens(self) -> None:
        """Forget every access token issued so far (the next API call answers 401)."""
        with self._lock:
            self._tokens.clear()

    # request handling (called from the handler threads)

    def _take_fault(self, kind: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind or (fault.kind is None and kind != "token"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _handle(
        self, method: str, raw_path: str, headers: _Headers, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        route = _route(method, split.path)
        kind = route[0] if route else "unknown"
        if kind == "allowedLocations":
            return self._allowed_locations(headers)
        with self._lock:
            self.calls[kind] += 1
            self.requests.append(RecordedRequest(method, split.path, kind, query, body))
        fault = self._take_fault(kind)
        answer = self._answer(fault, route, headers, query, body)
        if fault is not None and fault.edit is not None:
            fault.edit()
        return answer

    def _answer(
        self,
        fault: _Fault | None,
        route: tuple[str, str, str] | None,
        headers: _Headers,
        query: dict[str, list[str]],
        body: bytes,
    ) -> tuple[int, dict[str, str], Any]:
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.disconnect:
                return 0, {}, _DISCONNECT
            if fault.status is not None:
                return _fault_response(fault)
        try:
            if route is None:
                raise _ApiError(404, "Requested entity was not found.")
            kind, spreadsheet_id, rest = route
            if kind == "token":
                return self._token(body)
            self._authorize(headers)
            with self._lock:
                sheet = self._spreadsheets.get(spreadsheet_id)
                if sheet is None:
                    raise _ApiError(404, "Requested entity was not found.")
                if not sheet.shared:
                    raise _ApiError(403, "The caller does not have permission")
                return 200, {}, self._api(kind, sheet, rest, query, body)
        except _ApiError as error:
            payload = {"error": {"code": error.code, "message": error.message, "status": error.status}}
            return error.code, {}, payload

    def _token(self, body: bytes) -> tuple[int, dict[str, str], Any]:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        if self.token_error is not None:
            error, description = self.token_error
            return 400, {}, {"error": error, "error_description": description}
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            claims = _jwt_claims(form.get("assertion", ""))
            if claims is None:
                return 400, {}, {"error": "invalid_grant", "error_description": "Invalid JWT."}
            record = {"grant_type": grant, **claims}
        elif grant == "refresh_token" and form.get("refresh_token") and form.get("client_id"):
            record = {"grant_type": grant, "client_id": form["client_id"], "scope": form.get("scope", "")}
        else:
            return 400, {}, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self.token_grants.append(record)
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return 200, {}, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def _allowed_locations(self, headers: _Headers) -> tuple[int, dict[str, str], Any]:
        # google-auth asks this from a background thread after a token exchange; counted apart
        # from `calls` so that call counts stay deterministic.
        with self._lock:
            self.background_calls["allowedLocations"] += 1
        try:
            self._authorize(headers)
        except _ApiError as error:
            return (
                error.code,
                {},
                {"error": {"code": error.code, "message": error.message, "status": error.status}},
            )
        return 200, {}, {"locations": [], "encodedLocations": "0x0"}

    def _authorize(self, headers: _Headers) -> None:
        value = headers.get("Authorization") or ""
        if not value.startswith("Bearer "):
            raise _ApiError(401, _MISSING_CREDENTIAL)
        with self._lock:
            expiry = self._tokens.get(value[len("Bearer ") :])
        if expiry is None or expiry < time.monotonic():
            raise _ApiError(401, _INVALID_CREDENTIAL)

    def _tab(self, spreadsheet_id: str, title: str) -> _Tab:
        found = self._spreadsheets[spreadsheet_id].tab(title)
        if found is None:
            raise KeyError(f"no tab {title!r} in {spreadsheet_id}")
        return found

    # the API proper (called with the lock held)

    def _api(
        self, kind: str, sheet: _Spreadsheet, rest: str, query: dict[str, list[str]], body: bytes
    ) -> Any:
        def param(name: str, default: str) -> str:
            return query.get(name, [default])[0]

        if kind == "metadata":
            return self._metadata(sheet)
        if kind == "values.get":
            return self._read(sheet, rest, param("valueRenderOption", "FORMATTED_VALUE"), query)
        if kind == "values.batchGet":
            ranges = query.get("ranges", [])
            render = param("valueRenderOption", "FORMATTED_VALUE")
            return {
                "spreadsheetId": sheet.spreadsheet_id,
                "valueRanges": [self._read(sheet, r, render, query) for r in ranges],
            }
        if not sheet.editable:
            raise _ApiError(403, "The caller does not have permission")
        payload = _json_body(body)
        if kind == "values.update":
            option = _input_option(query.get("valueInputOption", [None])[0])
            data = [{"range": rest, **{k: v for k, v in payload.items() if k != "range"}}]
            if payload.get("range") not in (None, rest):
                raise _ApiError(
                    400,
                    f"Requested range '{payload['range']}' must match the range in the URL '{rest}'.",
                )
            result = self._write(sheet, data, option)
            response = result["responses"][0]
            return response
        if kind == "values.batchUpdate":
            option = _input_option(payload.get("valueInputOption"))
            return self._write(sheet, payload.get("data") or [], option)
        if kind == "batchUpdate":
            return self._batch_update(sheet, payload.get("requests") or [])
        raise _ApiError(404, "Requested entity was not found.")

    def _metadata(self, sheet: _Spreadsheet) -> dict[str, Any]:
        sheets = []
        for tab in sorted(sheet.tabs, key=lambda t: t.index):
            entry: dict[str, Any] = {"properties": tab.properties()}
            if tab.conditional_formats:
                entry["conditionalFormats"] = copy.deepcopy(tab.conditional_formats)
            if tab.column_groups:
                entry["columnGroups"] = copy.deepcopy(tab.column_groups)
            if tab.basic_filter is not None:
                entry["basicFilter"] = copy.deepcopy(tab.basic_filter)
            if tab.protected_ranges:
                entry["protectedRanges"] = copy.deepcopy(tab.protected_ranges)
            on_tab = [m for m in sheet.developer_metadata if m["location"].get("sheetId") == tab.sheet_id]
            if on_tab:
                entry["developerMetadata"] = copy.deepcopy(on_tab)
            sheets.append(entry)
        answer: dict[str, Any] = {
            "spreadsheetId": sheet.spreadsheet_id,
            "properties": {
                "title": sheet.title,
                "locale": "en_US",
                "autoRecalc": "ON_CHANGE",
                "timeZone": "Etc/GMT",
            },
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{sheet.spreadsheet_id}/edit",
        }
        on_document = [m for m in sheet.developer_metadata if m["location"].get("spreadsheet")]
        if on_document:
            answer["developerMetadata"] = copy.deepcopy(on_document)
        return answer

    def _resolve(self, sheet: _Spreadsheet, text: str) -> tuple[_Tab, _Bounds]:
        title, a1 = _split_range(text)
        if title is None:
            tab = sheet.tab(a1 or "")
            if tab is not None:
                return tab, _Bounds()
            bounds = _parse_a1(a1 or "")
            if bounds is None:
                raise _ApiError(400, f"Unable to parse range: {text}")
            return sheet.first_visible(), bounds
        tab = sheet.tab(title)
        if tab is None:
            raise _ApiError(400, f"Unable to parse range: {text}")
        if a1 is None:
            return tab, _Bounds()
        bounds = _parse_a1(a1)
        if bounds is None:
            raise _ApiError(400, f"Unable to parse range: {text}")
        return tab, bounds

    @staticmethod
    def _check_grid(tab: _Tab, text: str, last_row: int, last_column: int, where: str = "") -> None:
        if last_row > tab.row_count or last_column > tab.column_count:
            raise _ApiError(
                400,
                f"{where}Range ({text}) exceeds grid limits. Max rows: {tab.row_count}, "
                f"max columns: {tab.column_count}",
            )

    def _read(
        self, sheet: _Spreadsheet, text: str, render: str, query: dict[str, list[str]]
    ) -> dict[str, Any]:
        if render not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            raise _ApiError(400, f"Invalid value at 'value_render_option' ({render})")
        date_render = query.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
        major = query.get("majorDimension", ["ROWS"])[0]
        tab, b = self._resolve(sheet, text)
        self._check_grid(tab, text, b.row1 or 0, b.col1 or 0)
        row1 = b.row1 or tab.row_count
        col1 = b.col1 or tab.column_count
        # Only the stored part of the grid can hold values (the rest would be trimmed anyway).
        last_row = min(row1, len(tab.rows))
        last_col = min(col1, max((len(r) for r in tab.rows[b.row0 - 1 : last_row]), default=0))
        grid = [
            [_render(tab.get(r, c), render, date_render) for c in range(b.col0, last_col + 1)]
            for r in range(b.row0, last_row + 1)
        ]
        if major == "COLUMNS":
            grid = [list(col) for col in zip(*grid, strict=True)] if grid else []
        values = _trimmed(grid)
        result: dict[str, Any] = {
            "range": f"{quote_title(tab.title)}!{column_letter(b.col0)}{b.row0}:{column_letter(col1)}{row1}",
            "majorDimension": major,
        }
        if values:
            result["values"] = values
        return result

    def _write(self, sheet: _Spreadsheet, data: list[dict[str, Any]], option: str) -> dict[str, Any]:
        convert = _user_entered if option == "USER_ENTERED" else _raw
        # All or nothing, like Google: every range is checked before any cell is set.
        planned = [self._plan_write(sheet, i, item) for i, item in enumerate(data)]
        for plan in planned:
            for r, row in enumerate(plan.values):
                for c, value in enumerate(row):
                    if value is not None and _locked(plan.tab, plan.row0 + r, plan.col0 + c):
                        raise _ApiError(
                            400,
                            "You are trying to edit a protected cell or object. Please contact the "
                            "spreadsheet owner to remove protection if you need to edit.",
                        )
        responses = []
        cells = 0
        rows_touched: set[tuple[int, int]] = set()
        columns_touched: set[tuple[int, int]] = set()
        for plan in planned:
            count = 0
            for r, row in enumerate(plan.values):
                for c, value in enumerate(row):
                    if value is None:  # null leaves the cell as it is
                        continue
                    plan.tab.set(plan.row0 + r, plan.col0 + c, convert(value))
                    count += 1
                    rows_touched.add((plan.tab.sheet_id, plan.row0 + r))
                    columns_touched.add((plan.tab.sheet_id, plan.col0 + c))
            cells += count
            responses.append(
                {
                    "spreadsheetId": sheet.spreadsheet_id,
                    "updatedRange": plan.updated_range,
                    "updatedRows": plan.height,
                    "updatedColumns": plan.width,
                    "updatedCells": count,
                }
            )
        return {
            "spreadsheetId": sheet.spreadsheet_id,
            "totalUpdatedRows": len(rows_touched),
            "totalUpdatedColumns": len(columns_touched),
            "totalUpdatedCells": cells,
            "totalUpdatedSheets": len({plan.tab.sheet_id for plan in planned}),
            "responses": responses,
        }

    def _plan_write(self, sheet: _Spreadsheet, i: int, item: Mapping[str, Any]) -> _PlannedWrite:
        """Where the `i`th range of a values write goes, refused as Google refuses it."""
        text = item.get("range") or ""
        tab, b = self._resolve(sheet, text)
        values = item.get("values") or []
        if item.get("majorDimension") == "COLUMNS":
            width = max((len(v) for v in values), default=0)
            values = [[col[r] if r < len(col) else None for col in values] for r in range(width)]
        height = len(values)
        width = max((len(row) for row in values), default=0)
        if not b.single:
            if b.row1 is not None and b.row0 + height - 1 > b.row1:
                raise _ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to row "
                    f"[{b.row0 + height - 1}]",
                )
            if b.col1 is not None and b.col0 + width - 1 > b.col1:
                raise _ApiError(
                    400,
                    f"Requested writing within range [{text}], but tried writing to column "
                    f"[{column_letter(b.col0 + width - 1)}]",
                )
        if height and width:
            end = f"{column_letter(b.col0 + width - 1)}{b.row0 + height - 1}"
            self._check_grid(tab, text, b.row0 + height - 1, b.col0 + width - 1, f"Invalid data[{i}]: ")
        else:
            end = f"{column_letter(b.col0)}{b.row0}"
        updated_range = f"{quote_title(tab.title)}!{column_letter(b.col0)}{b.row0}:{end}"
        return _PlannedWrite(tab, b.row0, b.col0, values, height, width, updated_range)

    def _batch_update(self, sheet: _Spreadsheet, requests: list[dict[str, Any]]) -> dict[str, Any]:
        # All or nothing, like Google: work on a copy and keep it only if every request applies.
        work = copy.deepcopy(sheet)
        replies = []
        for i, request in enumerate(requests):
            if len(request) != 1:
                raise _ApiError(400, f"Invalid requests[{i}]: exactly one kind of request must be set.")
            ((name, spec),) = request.items()
            handler = _BATCH_HANDLERS.get(name)
            if handler is None:
                raise _ApiError(
                    400, f"Invalid JSON payload received. Unknown name \"{name}\" at 'requests[{i}]'."
                )
            try:
                replies.append(handler(work, spec))
            except _ApiError as error:
                raise _ApiError(400, f"Invalid requests[{i}].{name}: {error.message}") from None
        sheet.__dict__.update(work.__dict__)
        return {"spreadsheetId": sheet.spreadsheet_id, "replies": replies}


# --- spreadsheets:batchUpdate requests ---------------------------------------------


def _in_grid(grid: Mapping[str, Any], row: int, column: int) -> bool:
    """Whether 1-based (row, column) lies in the GridRange `grid`."""
    rows = int(grid.get("startRowIndex", 0)) < row <= int(grid.get("endRowIndex", row))
    return rows and int(grid.get("startColumnIndex", 0)) < column <= int(grid.get("endColumnIndex", column))


def _locked(tab: _Tab, row: int, column: int) -> bool:
    """Whether the caller may not write the cell: in a protected range it cannot edit (and not
    one that only warns), outside that range's holes."""
    return any(
        _in_grid(entry["range"], row, column)
        and not entry.get("requestingUserCanEdit")
        and not entry.get("warningOnly")
        and not any(_in_grid(hole, row, column) for hole in entry.get("unprotectedRanges") or [])
        for entry in tab.protected_ranges
    )


def _grid_tab(work: _Spreadsheet, grid_range: Mapping[str, Any]) -> _Tab:
    tab = work.tab_by_id(int(grid_range.get("sheetId", 0)))
    if tab is None:
        raise _ApiError(400, f"No grid with id: {grid_range.get('sheetId', 0)}")
    return tab


def _add_sheet(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    props = dict(spec.get("properties") or {})
    title = props.get("title") or f"Sheet{len(work.tabs) + 1}"
    if work.tab(title) is not None:
        raise _ApiError(400, f'A sheet with the name "{title}" already exists. Please enter another name.')
    sheet_id = props.get("sheetId")
    if sheet_id is None:
        sheet_id = work.next_sheet_id
        work.next_sheet_id += 1
    elif work.tab_by_id(int(sheet_id)) is not None:
        raise _ApiError(400, f"A sheet with the id {sheet_id} already exists.")
    index = int(props.get("index", len(work.tabs)))
    for tab in work.tabs:
        if tab.index >= index:
            tab.index += 1
    grid = props.get("gridProperties") or {}
    tab = _Tab(
        sheet_id=int(sheet_id),
        title=title,
        index=index,
        row_count=int(grid.get("rowCount", DEFAULT_ROWS)),
        column_count=int(grid.get("columnCount", DEFAULT_COLUMNS)),
        hidden=bool(props.get("hidden", False)),
    )
    work.tabs.append(tab)
    return {"addSheet": {"properties": tab.properties()}}


_Box = tuple[int, int, int, int]  # start row, end row, start column, end column (0-based, end excluded)


def _box(tab: _Tab, grid_range: Mapping[str, Any]) -> _Box:
    """A GridRange's bounds, its open ends at the edges of the grid."""
    return (
        int(grid_range.get("startRowIndex", 0)),
        int(grid_range.get("endRowIndex", tab.row_count)),
        int(grid_range.get("startColumnIndex", 0)),
        int(grid_range.get("endColumnIndex", tab.column_count)),
    )


def _without(outer: _Box, hole: _Box) -> list[_Box]:
    """`outer` less `hole`: up to four rectangles (`outer` itself when they do not overlap)."""
    r0, r1, c0, c1 = outer
    h0, h1, k0, k1 = hole
    if h0 >= r1 or h1 <= r0 or k0 >= c1 or k1 <= c0:
        return [outer]
    top, bottom = max(r0, h0), min(r1, h1)
    pieces = [
        (r0, top, c0, c1),
        (bottom, r1, c0, c1),
        (top, bottom, c0, max(c0, k0)),
        (top, bottom, min(c1, k1), c1),
    ]
    return [piece for piece in pieces if piece[0] < piece[1] and piece[2] < piece[3]]


def _set_data_validation(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Like Google: the rule (or none, without `rule`) replaces whatever validated those cells."""
    grid_range = spec.get("range") or {}
    tab = _grid_tab(work, grid_range)
    hole = _box(tab, grid_range)
    kept: list[dict[str, Any]] = []
    for existing in tab.data_validations:
        box = _box(tab, existing["range"])
        pieces = _without(box, hole)
        if pieces == [box]:
            kept.append(existing)
            continue
        for r0, r1, c0, c1 in pieces:
            piece_range = {
                "sheetId": tab.sheet_id,
                "startRowIndex": r0,
                "endRowIndex": r1,
                "startColumnIndex": c0,
                "endColumnIndex": c1,
            }
            kept.append({**copy.deepcopy(existing), "range": piece_range})
    if spec.get("rule"):
        kept.append(copy.deepcopy(dict(spec)))
    tab.data_validations = kept
    return {}


def _repeat_cell(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    grid_range = spec.get("range") or {}
    tab = _grid_tab(work, grid_range)
    if not spec.get("fields"):
        raise _ApiError(400, "At least one field must be specified in 'fields'.")
    entry = {"range": copy.deepcopy(dict(grid_range)), "cell": copy.deepcopy(spec.get("cell") or {})}
    entry["fields"] = spec["fields"]
    tab.formats = [f for f in tab.formats if (f["range"], f["fields"]) != (entry["range"], entry["fields"])]
    tab.formats.append(entry)
    return {}


def _dimension_tab(work: _Spreadsheet, dimension_range: Mapping[str, Any]) -> tuple[_Tab, str, range]:
    tab = _grid_tab(work, dimension_range)
    kind = dimension_range.get("dimension")
    if kind not in ("ROWS", "COLUMNS"):
        raise _ApiError(400, "dimension must be ROWS or COLUMNS")
    size = tab.row_count if kind == "ROWS" else tab.column_count
    start = int(dimension_range.get("startIndex", 0))
    end = int(dimension_range.get("endIndex", size))
    if not 0 <= start < end <= size:
        raise _ApiError(400, f"Invalid dimension range [{start}, {end}) for a grid of {size}")
    return tab, str(kind), range(start, end)


def _update_dimension_properties(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    tab, kind, indexes = _dimension_tab(work, spec.get("range") or {})
    paths = _field_paths(spec.get("fields") or "")
    if not paths:
        raise _ApiError(400, "At least one field must be specified in 'fields'.")
    props = spec.get("properties") or {}
    for index in indexes:
        stored = tab.dimensions.setdefault((kind, index), {})
        for path in paths:
            if path in props:
                stored[path] = props[path]
            else:
                stored.pop(path, None)
    return {}


def _same_span(group: Mapping[str, Any], dimension_range: Mapping[str, Any]) -> bool:
    keys = ("startIndex", "endIndex")
    return all(group["range"].get(k) == dimension_range.get(k) for k in keys)


def _add_dimension_group(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A new group nests inside the groups that contain it; the groups inside it go one deeper."""
    dimension_range = dict(spec.get("range") or {})
    tab, kind, indexes = _dimension_tab(work, dimension_range)
    if kind != "COLUMNS":
        raise _ApiError(501, "row groups are not implemented by the fake")
    inside = 0
    for group in tab.column_groups:
        span = range(group["range"]["startIndex"], group["range"]["endIndex"])
        if span.start <= indexes.start and indexes.stop <= span.stop:
            inside = max(inside, group["depth"])
        elif indexes.start <= span.start and span.stop <= indexes.stop:
            group["depth"] += 1
    tab.column_groups.append({"range": dimension_range, "depth": inside + 1, "collapsed": False})
    tab.column_groups.sort(key=lambda g: (g["depth"], g["range"]["startIndex"]))
    return {"addDimensionGroup": {"dimensionGroups": copy.deepcopy(tab.column_groups)}}


def _update_dimension_group(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    wanted = spec.get("dimensionGroup") or {}
    tab, _, _ = _dimension_tab(work, wanted.get("range") or {})
    group = next(
        (
            g
            for g in tab.column_groups
            if _same_span(g, wanted.get("range") or {}) and g["depth"] == wanted.get("depth")
        ),
        None,
    )
    if group is None:
        raise _ApiError(400, "No dimension group found with the given range and depth.")
    if "collapsed" in _field_paths(spec.get("fields") or ""):
        group["collapsed"] = bool(wanted.get("collapsed", False))
    return {}


def _set_basic_filter(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(dict(spec.get("filter") or {}))
    tab = _grid_tab(work, found.get("range") or {})
    tab.basic_filter = found
    return {}


def _add_conditional_format_rule(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    rule = copy.deepcopy(dict(spec.get("rule") or {}))
    ranges = rule.get("ranges") or []
    if not ranges:
        raise _ApiError(400, "At least one range must be specified.")
    tab = _grid_tab(work, ranges[0])
    index = int(spec.get("index", len(tab.conditional_formats)))
    tab.conditional_formats.insert(index, rule)
    return {}


def _field_paths(mask: str) -> list[str]:
    """Expand a field mask: `title,gridProperties(rowCount)` -> ["title", "gridProperties.rowCount"]."""
    expanded = re.sub(
        r"(\w+)\(([^()]*)\)",
        lambda m: ",".join(f"{m.group(1)}.{part.strip()}" for part in m.group(2).split(",")),
        mask,
    )
    return [p.strip().replace("/", ".") for p in expanded.split(",") if p.strip()]


def _update_sheet_properties(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    props = spec.get("properties") or {}
    tab = _grid_tab(work, props)
    mask = spec.get("fields")
    if not mask:
        raise _ApiError(400, "At least one field must be specified in 'fields'.")
    paths = _field_paths(mask)
    if "*" in paths:
        paths = [k for k in props if k not in ("sheetId", "gridProperties")]
        paths += [f"gridProperties.{k}" for k in props.get("gridProperties") or {}]
    for path in paths:
        head, _, sub = path.partition(".")
        value: Any = props.get(head)
        if sub:
            value = (value or {}).get(sub)
        if path == "title":
            if value != tab.title and work.tab(value) is not None:
                raise _ApiError(400, f'A sheet with the name "{value}" already exists.')
            tab.title = value
        elif path == "index":
            tab.index = int(value)
        elif path == "hidden":
            tab.hidden = bool(value)
        elif path == "gridProperties.rowCount":
            tab.row_count = int(value)
            del tab.rows[tab.row_count :]
        elif path == "gridProperties.columnCount":
            tab.column_count = int(value)
            for row in tab.rows:
                del row[tab.column_count :]
        elif head == "gridProperties":
            tab.extra.setdefault("gridProperties", {})[sub] = value
        else:
            tab.extra[head] = copy.deepcopy(value)
    return {}


def _append_dimension(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    tab = _grid_tab(work, spec)
    length = int(spec.get("length", 0))
    if spec.get("dimension") == "COLUMNS":
        tab.column_count += length
    else:
        tab.row_count += length
    return {}


_VISIBILITIES = ("DOCUMENT", "PROJECT")


def _metadata_location(work: _Spreadsheet, location: Mapping[str, Any]) -> dict[str, Any]:
    """A DeveloperMetadataLocation as Google stores it (sheet or spreadsheet; not ranges here)."""
    if location.get("spreadsheet"):
        return {"locationType": "SPREADSHEET", "spreadsheet": True}
    if "sheetId" in location:
        tab = _grid_tab(work, location)
        return {"locationType": "SHEET", "sheetId": tab.sheet_id}
    if "dimensionRange" in location:
        raise _ApiError(501, "developer metadata on rows or columns is not implemented by the fake")
    raise _ApiError(400, "A location must be specified for developer metadata.")


def _create_developer_metadata(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    wanted = spec.get("developerMetadata") or {}
    key = wanted.get("metadataKey")
    if not key:
        raise _ApiError(400, "Developer metadata must have a key.")
    visibility = wanted.get("visibility")
    if visibility not in _VISIBILITIES:
        raise _ApiError(400, "Developer metadata must have a visibility of DOCUMENT or PROJECT.")
    location = _metadata_location(work, wanted.get("location") or {})
    metadata_id = wanted.get("metadataId")
    if metadata_id is None:
        metadata_id = work.next_metadata_id
        work.next_metadata_id += 1
    elif int(metadata_id) <= 0:
        raise _ApiError(400, "Developer metadata ID must be positive.")
    elif any(m["metadataId"] == int(metadata_id) for m in work.developer_metadata):
        raise _ApiError(400, f"Developer metadata with ID {metadata_id} already exists.")
    created: dict[str, Any] = {"metadataId": int(metadata_id), "metadataKey": str(key)}
    if wanted.get("metadataValue") is not None:
        created["metadataValue"] = str(wanted["metadataValue"])
    created["location"] = location
    created["visibility"] = visibility
    work.developer_metadata.append(created)
    return {"createDeveloperMetadata": {"developerMetadata": copy.deepcopy(created)}}


def _lookup_matches(work: _Spreadsheet, metadata: Mapping[str, Any], data_filter: Mapping[str, Any]) -> bool:
    lookup = data_filter.get("developerMetadataLookup")
    if not isinstance(lookup, Mapping) or not lookup:
        raise _ApiError(400, "Only developerMetadataLookup data filters are implemented by the fake.")
    if "metadataId" in lookup and metadata["metadataId"] != int(lookup["metadataId"]):
        return False
    for name in ("metadataKey", "metadataValue", "visibility"):
        if name in lookup and metadata.get(name) != lookup[name]:
            return False
    if "locationType" in lookup and metadata["location"]["locationType"] != lookup["locationType"]:
        return False
    if "metadataLocation" in lookup:
        where = _metadata_location(work, lookup["metadataLocation"])
        if metadata["location"] != where:
            return False
    return True


def _matching_metadata(work: _Spreadsheet, filters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in work.developer_metadata if any(_lookup_matches(work, m, f) for f in filters)]


def _update_developer_metadata(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    filters = spec.get("dataFilters") or []
    if not filters:
        raise _ApiError(400, "At least one data filter must be specified.")
    paths = _field_paths(spec.get("fields") or "")
    if not paths:
        raise _ApiError(400, "At least one field must be specified in 'fields'.")
    wanted = spec.get("developerMetadata") or {}
    if "*" in paths:
        paths = [k for k in wanted if k != "metadataId"]
    matched = _matching_metadata(work, filters)
    for metadata in matched:
        for path in paths:
            if path == "metadataId":
                raise _ApiError(400, "The metadataId of developer metadata cannot be updated.")
            if path == "location":
                metadata["location"] = _metadata_location(work, wanted.get("location") or {})
            elif path == "visibility":
                if wanted.get("visibility") not in _VISIBILITIES:
                    raise _ApiError(400, "Developer metadata must have a visibility of DOCUMENT or PROJECT.")
                metadata["visibility"] = wanted["visibility"]
            elif path in ("metadataKey", "metadataValue"):
                if path in wanted:
                    metadata[path] = str(wanted[path])
                elif path == "metadataValue":
                    metadata.pop(path, None)
                else:
                    raise _ApiError(400, "Developer metadata must have a key.")
            else:
                raise _ApiError(400, f"Unknown developer metadata field: {path}")
    return {"updateDeveloperMetadata": {"developerMetadata": copy.deepcopy(matched)}}


def _delete_developer_metadata(work: _Spreadsheet, spec: Mapping[str, Any]) -> dict[str, Any]:
    data_filter = spec.get("dataFilter")
    if not isinstance(data_filter, Mapping):
        raise _ApiError(400, "A data filter must be specified.")
    matched = _matching_metadata(work, [data_filter])
    work.developer_metadata = [m for m in work.developer_metadata if m not in matched]
    return {"deleteDeveloperMetadata": {"deletedDeveloperMetadata": copy.deepcopy(matched)}}


_BATCH_HANDLERS = {
    "createDeveloperMetadata": _create_developer_metadata,
    "updateDeveloperMetadata": _update_developer_metadata,
    "deleteDeveloperMetadata": _delete_developer_metadata,
    "addSheet": _add_sheet,
    "setDataValidation": _set_data_validation,
    "addConditionalFormatRule": _add_conditional_format_rule,
    "updateSheetProperties": _update_sheet_properties,
    "appendDimension": _append_dimension,
    "repeatCell": _repeat_cell,
    "updateDimensionProperties": _update_dimension_properties,
    "addDimensionGroup": _add_dimension_group,
    "updateDimensionGroup": _update_dimension_group,
    "setBasicFilter": _set_basic_filter,
}


# --- helpers -------------------------------------------------------------------


_API_PATH = re.compile(r"^/v4/spreadsheets/([A-Za-z0-9_-]+)(.*)$")


def _route(method: str, path: str) -> tuple[str, str, str] | None:
    """(kind, spreadsheet id, range) for a request, or None when nothing answers there."""
    if path == "/token":
        return ("token", "", "") if method == "POST" else None
    if path.startswith("/v1/projects/-/serviceAccounts/") and path.endswith("/allowedLocations"):
        return ("allowedLocations", "", "") if method == "GET" else None
    match = _API_PATH.match(path)
    if not match:
        return None
    key, rest = match.groups()
    if rest == "" and method == "GET":
        return "metadata", key, ""
    if rest == ":batchUpdate" and method == "POST":
        return "batchUpdate", key, ""
    if rest == "/values:batchGet" and method == "GET":
        return "values.batchGet", key, ""
    if rest == "/values:batchUpdate" and method == "POST":
        return "values.batchUpdate", key, ""
    if rest.startswith("/values/") and not rest.endswith((":append", ":clear")):
        text = unquote(rest[len("/values/") :])
        if method == "GET":
            return "values.get", key, text
        if method == "PUT":
            return "values.update", key, text
    return None


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise _ApiError(400, "Invalid JSON payload received.") from None
    if not isinstance(payload, dict):
        raise _ApiError(400, "Invalid JSON payload received.")
    return payload


def _input_option(option: str | None) -> str:
    if option is None:
        raise _ApiError(400, "'valueInputOption' is required but not specified")
    if option not in ("RAW", "USER_ENTERED"):
        raise _ApiError(400, f"Invalid value at 'value_input_option' ({option})")
    return option


def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return None
    if not isinstance(claims, dict) or "iss" not in claims:
        return None
    return {k: claims.get(k) for k in ("iss", "scope", "aud", "sub")}


def _fault_response(fault: _Fault) -> tuple[int, dict[str, str], Any]:
    status = int(fault.status or 500)
    headers = {}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    if status == 502:  # Google's front end answers a bad gateway with HTML, not JSON
        headers["Content-Type"] = "text/html; charset=UTF-8"
        return status, headers, b"<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title></html>"
    message = fault.message or _FAULT_MESSAGES.get(status) or HTTPStatus(status).phrase
    status_name = _STATUS_NAMES.get(status, HTTPStatus(status).name)
    return status, headers, {"error": {"code": status, "message": message, "status": status_name}}


class _HTTPServer(ClosingHTTPServer):
    allow_reuse_address = True
    fake: FakeSheetsServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 30
    # One buffered write per answer, no Nagle: else each keep-alive answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.calls instead
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.fake._handle(method, self.path, self.headers, body)
        if payload is _DISCONNECT:
            self.close_connection = True
            return
        if isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload).encode("utf-8")
            headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --- credentials for tests ------------------------------------------------------------


_KEY_LOCK = threading.Lock()
_KEY_PEM: list[str] = []
_ids = itertools.count(1)


def _private_key_pem() -> str:
    # One small RSA key per process: generating and loading a key is slow (loading a 2048-bit
    # key costs ~90 ms), and the fake does not check signatures.
    with _KEY_LOCK:
        if not _KEY_PEM:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _KEY_PEM.append(pem.decode("ascii"))
        return _KEY_PEM[0]


def make_service_account_file(
    path: str | Path, token_uri: str, *, client_email: str = SERVICE_ACCOUNT_EMAIL
) -> Path:
    """Write a service-account JSON key file (fresh test RSA key) whose `token_uri` is `token_uri`."""
    path = Path(path)
    info = {
        "type": "service_account",
        "project_id": "sheetorders-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": _private_key_pem(),
        "client_email": client_email,
        "client_id": str(100000000000000000000 + next(_ids)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path


def make_authorized_user_file(path: str | Path, token_uri: str) -> Path:
    """Write an OAuth "authorized user" file (what gspread.oauth stores after sign-in)."""
    path = Path(path)
    info = {
        "type": "authorized_user",
        "client_id": "123-test.apps.googleusercontent.com",
        "client_secret": "test-secret",
        "refresh_token": "1//test-refresh-" + secrets.token_urlsafe(12),
        "token_uri": token_uri,
        "scopes": ["https://www.googleapis.com/auth/spreadsheets"],
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


def google_options(server: FakeSheetsServer, directory: str | Path, **extra: Any) -> dict[str, Any]:
    """Options for GoogleSheetsBackend that talk to `server`: a key file in `directory`, the endpoint."""
    key_file = make_service_account_file(Path(directory) / "service-account.json", server.token_uri)
    return {"credentials": str(key_file), "api_endpoint": server.base_url, **extra}
