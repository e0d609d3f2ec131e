"""Google Sheets backend: gspread's HTTP client + google-auth credentials, few API calls.

A pass costs one `values:batchGet` to read the tab, one to check for edits before writing,
one `values:batchUpdate` for all the written cells, and one spreadsheet metadata read for
the journal's mark on the tab and its protected ranges (plus the token exchange, once an
hour). Only when a write must be tried again (429/5xx, a grid too small) or is too big for
one request does it read the tab once more before each further try or part, to find the
rows where they are now. The metadata read that finds the first tab (no tab named) serves
for the mark as well; metadata is read again only for a missing tab (to list the tabs in the
error) or a write past the grid. Marking the tab costs one `spreadsheets:batchUpdate`.

Options (the config's `google:` section):

- `credentials`: path to a service-account JSON key file (default: $GOOGLE_APPLICATION_CREDENTIALS).
- `oauth`: true, or `{client_secrets: path, authorized_user: path}`, to sign in as a person
  through gspread's OAuth flow instead of a service account.
- `api_endpoint`: base URL of the Sheets API instead of https://sheets.googleapis.com
  (a proxy, or a fake in tests); also $SHEETORDERS_GOOGLE_API_ENDPOINT.
- `token_uri`: OAuth2 token endpoint instead of the one in the key file.
- `timeout`: seconds per HTTP request (default 30).
- `max_attempts`: tries per request on 429/5xx/connection errors (default 5).
- `max_wait`: longest wait between two tries, in seconds (default 60).
- `sleep`: the function that waits between tries (tests pass a recorder).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import google.auth.exceptions
import gspread
import requests
import tenacity
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials as UserCredentials
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient
from gspread.urls import SPREADSHEET_BATCH_UPDATE_URL, SPREADSHEET_VALUES_BATCH_UPDATE_URL
from gspread.utils import convert_credentials

from sheetorders.errors import RowsNotFound, SheetChanged, SheetError, SheetNotWritable, SheetUnavailable
from sheetorders.retry_after import parse_retry_after
from sheetorders.sheets.base import Cell, CellWrite, SheetBackend, SheetTable, cells_are, column_letter

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
GOOGLE_API = "https://sheets.googleapis.com"
ENDPOINT_ENV = "SHEETORDERS_GOOGLE_API_ENDPOINT"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0
DEFAULT_ATTEMPTS = 5
DEFAULT_MAX_WAIT = 60.0
MAX_BODY_BYTES = 8_000_000
FRESH_FOR = 30.0  # seconds a table read by changed_since_read may stand in for the next read()
MAX_COLUMN = 18_278  # ZZZ: the widest a Google sheet can be
OWNER_KEY = "sheetorders.journal"  # developer metadata key of the journal's mark, on the tab
_METADATA_FIELDS = (
    "sheets(properties(sheetId,title,index,hidden,gridProperties),developerMetadata,"
    "protectedRanges(range,requestingUserCanEdit,warningOnly,unprotectedRanges))"
)

_URL = re.compile(r"^https?://docs\.google\.com/spreadsheets/(?:u/\d+/)?d/([A-Za-z0-9_-]+)")
_KEY = re.compile(r"^[A-Za-z0-9_-]{30,}$")
_GID = re.compile(r"[#?&]gid=(\d+)")


def spreadsheet_key(source: str) -> str | None:
    """The spreadsheet key in a Google Sheets URL or a bare key; None for anything else."""
    source = source.strip()
    match = _URL.match(source)
    if match:
        return match.group(1)
    if _KEY.match(source) and not os.path.exists(source):
        return source
    return None


def quote_tab(title: str) -> str:
    """A tab title as the start of an A1 range: `'It''s'`."""
    return "'" + title.replace("'", "''") + "'"


# --- HTTP -----------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    """Seconds from a 429/503 answer's Retry-After header (delta-seconds or HTTP date)."""
    if not isinstance(error, APIError):
        return None
    return parse_retry_after(error.response.headers.get("Retry-After"))


def _status(error: APIError) -> int:
    # gspread sets code -1 when the error body was not JSON (a proxy's HTML page, say).
    return error.code if error.code > 0 else error.response.status_code


def _transient(error: BaseException) -> bool:
    if isinstance(error, APIError):
        return _status(error) in RETRY_STATUSES
    return isinstance(
        error,
        (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            google.auth.exceptions.TransportError,
        ),
    )


_GOOGLE_AUTH_HOSTS = ("https://iamcredentials.googleapis.com", "https://iamcredentials.mtls.googleapis.com")


def _rerouted(url: str, endpoint: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if url.startswith(prefix):
            return endpoint + url[len(prefix) :]
    return url


class _RoutedSession(requests.Session):
    """The session google-auth uses for its own calls, when the API endpoint is overridden.

    Besides the token exchange (which goes to `token_uri`), google-auth looks up the service
    account's "regional access boundary" on iamcredentials.googleapis.com in the background;
    send that to the endpoint as well, so nothing reaches Google behind a proxy or a test fake.
    """

    # google-auth deep-copies the session for its background lookup; requests copies only these.
    __attrs__ = [*requests.Session.__attrs__, "endpoint"]  # noqa: RUF012 - as requests declares it

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str):
            url = _rerouted(url, self.endpoint, _GOOGLE_AUTH_HOSTS)
        return super().request(method, url, *args, **kwargs)


class RetryingHTTPClient(HTTPClient):
    """gspread's HTTPClient, sent to `endpoint`, with a timeout and bounded retries.

    Retries 429 (waiting at least its Retry-After), 500/502/503/504 and connection errors,
    with exponential backoff and jitter; gives up after `attempts` tries, or at once when
    Retry-After asks for more than `max_wait`. Reads and metadata changes are safe to repeat
    as they are; writes of values are not (a person may move rows between two tries), so the
    backend sends those with `request_once` under `retrying()` and checks the rows between tries.
    """

    def __init__(
        self,
        auth: Any,
        session: requests.Session | None = None,
        *,
        endpoint: str = GOOGLE_API,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        endpoint = endpoint.rstrip("/")
        if session is None and endpoint != GOOGLE_API:
            credentials = convert_credentials(auth)
            session = AuthorizedSession(  # type: ignore[no-untyped-call]  # google-auth leaves it untyped
                credentials, auth_request=AuthRequest(_RoutedSession(endpoint))
            )
            super().__init__(auth, session)
            self.auth = credentials  # gspread sets it only when it builds the session itself
        else:
            super().__init__(auth, session)
        self.endpoint = endpoint
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self.sleep = sleep
        self.last_attempts = 0  # tries the last request took
        self.set_timeout(timeout)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        backoff = tenacity.wait_exponential_jitter(initial=1, max=self.max_wait, jitter=1)(state)
        error = state.outcome.exception() if state.outcome else None
        after = _retry_after(error) if error is not None else None
        return backoff if after is None else max(after, min(backoff, self.max_wait))

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        error = state.outcome.exception() if state.outcome else None
        after = _retry_after(error) if error is not None else None
        return after is not None and after > self.max_wait

    def retrying(self) -> tenacity.Retrying:
        """The retry policy of every request, for a caller that makes its own tries."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient),
            stop=self._stop,
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )

    def request_once(self, method: str, endpoint: str, json: Mapping[str, Any]) -> requests.Response:
        """One try, no retry (APIError on an error answer)."""
        return super().request(method, _rerouted(endpoint, self.endpoint, (GOOGLE_API,)), json=json)

    def request(
        self,
        method: str,
        endpoint: str,
        params: Any = None,
        data: bytes | None = None,
        json: Mapping[str, Any] | None = None,
        files: Any = None,
        headers: Any = None,
    ) -> requests.Response:
        endpoint = _rerouted(endpoint, self.endpoint, (GOOGLE_API,))
        retrying = self.retrying()
        try:
            return retrying(
                super().request,
                method,
                endpoint,
                params=params,
                data=data,
                json=json,
                files=files,
                headers=headers,
            )
        finally:
            self.last_attempts = int(retrying.statistics.get("attempt_number", 1))


# --- values ------------------------------------------------------------------------


def _to_json(value: Cell) -> Any:
    """A cell value as JSON for valueInputOption RAW (None clears the cell)."""
    if value is None:
        return ""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # JSON has no NaN or infinity
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _from_json(value: Any) -> Cell:
    return None if value == "" else value


def _table(values: list[list[Any]]) -> SheetTable:
    rows = [[_from_json(v) for v in row] for row in values]
    return SheetTable(headers=rows[0] if rows else [], rows=rows[1:])


def _normalized(table: SheetTable) -> list[list[Cell]]:
    rows = []
    for row in [table.headers, *table.rows]:
        end = len(row)
        while end and row[end - 1] is None:
            end -= 1
        rows.append(list(row[:end]))
    while rows and not rows[-1]:
        rows.pop()
    return rows


def _copy(table: SheetTable) -> SheetTable:
    return SheetTable(headers=list(table.headers), rows=[list(r) for r in table.rows])


@dataclass
class _Block:
    """A rectangle of written cells: rows row0.. and columns col0.. ."""

    row0: int
    col0: int
    values: list[list[Any]]

    def cells(self) -> list[CellWrite]:
        return [
            CellWrite(self.row0 + i, self.col0 + j, value)
            for i, row in enumerate(self.values)
            for j, value in enumerate(row)
        ]

    def put_into(self, table: SheetTable) -> None:
        for i, row in enumerate(self.values):
            for j, value in enumerate(row):
                _put(table, self.row0 + i, self.col0 + j, _from_json(value))

    def a1(self) -> str:
        row1 = self.row0 + len(self.values) - 1
        col1 = self.col0 + len(self.values[0]) - 1
        start = f"{column_letter(self.col0)}{self.row0}"
        return start if (row1, col1) == (self.row0, self.col0) else f"{start}:{column_letter(col1)}{row1}"


def _blocks(cells: list[CellWrite]) -> list[_Block]:
    """Runs of adjacent cells of a row, stacked when consecutive rows have the same run."""
    by_row: dict[int, dict[int, Any]] = {}
    for cell in cells:
        if cell.row < 1 or cell.column < 1:
            raise SheetError(
                f"cannot write row {cell.row}, column {cell.column}: rows and columns start at 1"
            )
        by_row.setdefault(cell.row, {})[cell.column] = _to_json(cell.value)
    runs: list[tuple[int, int, list[Any]]] = []
    for row, columns in by_row.items():
        ordered = sorted(columns)
        start = ordered[0]
        for prev, col in zip(ordered, [*ordered[1:], None], strict=True):
            if col != prev + 1:
                runs.append((row, start, [columns[c] for c in range(start, prev + 1)]))
                if col is not None:
                    start = col
    runs.sort(key=lambda run: (run[1], len(run[2]), run[0]))
    blocks: list[_Block] = []
    for row, col, values in runs:
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last.col0 == col
            and len(last.values[0]) == len(values)
            and last.row0 + len(last.values) == row
        ):
            last.values.append(values)
        else:
            blocks.append(_Block(row, col, [values]))
    return blocks


@dataclass
class _Chunk:
    """What one values:batchUpdate sends, as the write named it: rectangles of cells, and
    their ranges and values as the request has them."""

    blocks: list[_Block]
    data: list[dict[str, Any]]

    def cells(self) -> list[CellWrite]:
        return [cell for block in self.blocks for cell in block.cells()]


def _data(tab: str, cells: list[CellWrite]) -> list[dict[str, Any]]:
    return [{"range": f"{tab}!{block.a1()}", "values": block.values} for block in _blocks(cells)]


def _chunks(tab: str, cells: list[CellWrite], limit: int) -> list[_Chunk]:
    """The cells as whole rectangles, in chunks whose request body stays under `limit` bytes."""
    chunks = [_Chunk([], [])]
    size = 0
    for block in _blocks(cells):
        item = {"range": f"{tab}!{block.a1()}", "values": block.values}
        item_size = len(json.dumps(item, ensure_ascii=False).encode("utf-8")) + 2
        if chunks[-1].data and size + item_size > limit:
            chunks.append(_Chunk([], []))
            size = 0
        chunks[-1].data.append(item)
        chunks[-1].blocks.append(block)
        size += item_size
    return chunks


# --- keeping a write on its rows ----------------------------------------------------------


def _identity(row: list[Cell], skip: frozenset[int]) -> tuple[Cell, ...]:
    """A row's cells outside the columns `skip` (the ones being written), trailing empties trimmed."""
    values = [None if column in skip else value for column, value in enumerate(row, start=1)]
    while values and values[-1] is None:
        values.pop()
    return tuple(values)


def _relocated(
    old: list[list[Cell]], new: list[list[Cell]], rows: list[int], skip: frozenset[int]
) -> dict[int, int | None]:
    """Where each of `rows` (numbered as in `old`) is in `new`: the row with the same cells
    outside `skip`, in order among equal ones; None when not found, or when rows equal to it
    were added or removed (which one is which is then a guess)."""
    before: dict[tuple[Cell, ...], list[int]] = defaultdict(list)
    after: dict[tuple[Cell, ...], list[int]] = defaultdict(list)
    for table, groups in ((old, before), (new, after)):
        for number, cells in enumerate(table[1:], start=2):
            groups[_identity(cells, skip)].append(number)
    rank = {number: i for numbers in before.values() for i, number in enumerate(numbers)}
    moves: dict[int, int | None] = {1: 1}
    for target in rows:
        if target == 1:
            continue
        key = _identity(old[target - 1], skip) if target <= len(old) else None
        if key is None or len(before[key]) != len(after.get(key, ())):
            moves[target] = None
        else:
            moves[target] = after[key][rank[target]]
    return moves


class _RowGuard:
    """Keeps one write on the rows it was meant for while people edit the sheet.

    Before each retry and each next chunk the tab is read again, and every row of the write
    is looked for by its cells outside the written columns (which neither this write nor a
    failed try that landed anyway can change) as they were when the caller read the sheet.
    """

    def __init__(self, basis: SheetTable | None, cells: list[CellWrite]) -> None:
        self.basis = basis  # what the write's row numbers refer to; None: nothing was read
        self.skip = frozenset(cell.column for cell in cells)
        self.rows = sorted({cell.row for cell in cells})
        self.moves: dict[int, int | None] | None = None  # None: every row is where it was
        self.moved = False  # some check found rows elsewhere

    def recheck(self, fresh: SheetTable, description: str) -> None:
        if self.basis is None:
            return
        old = [self.basis.headers, *self.basis.rows]
        new = [fresh.headers, *fresh.rows]

        def at(table: list[list[Cell]], row: int) -> tuple[Cell, ...]:
            return _identity(table[row - 1], self.skip) if row <= len(table) else ()

        if at(old, 1) != at(new, 1):
            raise SheetChanged(
                f"{description}: the header row changed while results were being written; "
                "the rest of them was not written"
            )
        if all(at(old, row) == at(new, row) for row in self.rows):
            self.moves = None
        else:
            self.moves = _relocated(old, new, self.rows, self.skip)
            self.moved = True

    def place(self, cells: list[CellWrite]) -> tuple[list[CellWrite], set[int]]:
        """The cells moved to where their rows are now, and the rows not found."""
        if self.moves is None:
            return cells, set()
        placed, lost = [], set()
        for cell in cells:
            row = self.moves.get(cell.row)
            if row is None:
                lost.add(cell.row)
            else:
                placed.append(cell if row == cell.row else CellWrite(row, cell.column, cell.value))
        return placed, lost


def _tries(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


class _GridTooSmall(Exception):
    pass


def _as_class(factory: Callable[..., HTTPClient]) -> type[HTTPClient]:
    """gspread types its http_client argument as a class but only calls it."""
    return cast(type[HTTPClient], factory)


# --- the backend ---------------------------------------------------------------------


class GoogleSheetsBackend(SheetBackend):
    """One tab of a Google spreadsheet, through the Sheets API v4."""

    max_body_bytes = MAX_BODY_BYTES
    change_check_is_free = False  # it reads the tab again
    edit_rights_unknown = True  # the Sheets API tells no share's role but by refusing a write

    @classmethod
    def accepts(cls, source: str) -> bool:
        return spreadsheet_key(source) is not None

    def __init__(
        self,
        source: str,
        worksheet: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(source, worksheet, options)
        key = spreadsheet_key(source)
        if key is None:
            raise SheetError(f"{source!r} is not a Google Sheets URL or key")
        self.key = key
        gid = _GID.search(source)
        self._gid = int(gid.group(1)) if gid else None
        self._sleep = sleep or self.options.get("sleep") or time.sleep
        self._http: RetryingHTTPClient | None = None
        self._who = "the service account"
        self._tab: str | None = worksheet
        self._last: SheetTable | None = None
        self._fresh: tuple[float, SheetTable] | None = None
        self._meta: dict[str, Any] | None = None  # the metadata read since the last read()
        self._after_write: list[Callable[[], None]] = []

    @property
    def identity(self) -> str:
        """The spreadsheet's key and the tab's name, whichever URL or key spelled them (a tab
        given by a gid, or the first one, is named from the spreadsheet's metadata)."""
        return f"google:{self.key}#{(self.worksheet or self._tab_name()).casefold()}"

    @property
    def former_identities(self) -> tuple[str, ...]:
        return (super().identity,)  # the source as spelled

    @property
    def description(self) -> str:
        name = f"Google Sheets {self.key}"
        return f"{name} [{self._tab}]" if self._tab else name

    # connection

    @property
    def endpoint(self) -> str:
        endpoint = str(self.options.get("api_endpoint") or os.environ.get(ENDPOINT_ENV) or GOOGLE_API)
        if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
            raise SheetError(
                f"google.api_endpoint {endpoint!r} is not a URL: give one like https://sheets.googleapis.com"
            )
        return endpoint

    def _number(self, name: str, default: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = 0.0
        if not number > 0 or isinstance(value, bool):
            raise SheetError(f"google.{name} must be a positive number, not {value!r}")
        return number

    def _client(self) -> RetryingHTTPClient:
        if self._http is None:
            factory = partial(
                RetryingHTTPClient,
                endpoint=self.endpoint,
                timeout=self._number("timeout", DEFAULT_TIMEOUT),
                attempts=int(self._number("max_attempts", DEFAULT_ATTEMPTS)),
                max_wait=self._number("max_wait", DEFAULT_MAX_WAIT),
                sleep=self._sleep,
            )
            client = self._oauth_client(factory) if self.options.get("oauth") else self._sa_client(factory)
            http = client.http_client
            assert isinstance(http, RetryingHTTPClient)
            self._http = http
        return self._http

    def _sa_client(self, factory: Callable[..., HTTPClient]) -> gspread.Client:
        configured = self.options.get("credentials") or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not configured:
            raise SheetError(
                "google.credentials is not set: create a key for a service account in Google Cloud "
                "console (IAM → Service accounts → Keys → Add key → JSON) and point google.credentials "
                "at the file, or set google.oauth: true to sign in as yourself"
            )
        path = Path(str(configured)).expanduser()
        where = f"google.credentials: {configured}"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SheetError(
                f"{where} not found — create a key for the service account in Google Cloud console "
                "and point google.credentials at it"
            ) from None
        except OSError as error:
            raise SheetError(f"{where} cannot be read: {error.strerror}") from None
        except ValueError:
            raise SheetError(
                f"{where} is not valid JSON — download the service account's JSON key again"
            ) from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            kind = info.get("type") if isinstance(info, dict) else None
            if isinstance(info, dict) and ("installed" in info or "web" in info or kind == "authorized_user"):
                raise SheetError(
                    f"{where} is an OAuth client file, not a service-account key: set google.oauth "
                    "to use it, or create a JSON key for a service account"
                )
            raise SheetError(f'{where} is not a service-account key (its "type" is not "service_account")')
        missing = [f for f in ("client_email", "private_key", "token_uri") if not info.get(f)]
        if missing and not (missing == ["token_uri"] and self.options.get("token_uri")):
            raise SheetError(
                f"{where} is not a complete service-account key (missing {', '.join(missing)}): "
                "download the JSON key again"
            )
        if self.options.get("token_uri"):
            info = {**info, "token_uri": str(self.options["token_uri"])}
        self._who = str(info["client_email"])
        try:
            return gspread.service_account_from_dict(
                info, scopes=list(SCOPES), http_client=_as_class(factory)
            )
        except ValueError:
            raise SheetError(
                f"{where} has a private key that cannot be loaded — download the JSON key again"
            ) from None

    def _oauth_client(self, factory: Callable[..., HTTPClient]) -> gspread.Client:
        if self.options.get("credentials"):
            raise SheetError("set either google.credentials or google.oauth, not both")
        setting = self.options["oauth"]
        files = setting if isinstance(setting, Mapping) else {}
        kwargs: dict[str, Any] = {"scopes": list(SCOPES)}
        if files.get("client_secrets"):
            kwargs["credentials_filename"] = Path(str(files["client_secrets"])).expanduser()
        if files.get("authorized_user"):
            kwargs["authorized_user_filename"] = Path(str(files["authorized_user"])).expanduser()
        self._who = "the Google account you signed in with"
        try:
            signed_in = gspread.oauth(**kwargs)
        except FileNotFoundError as error:
            raise SheetError(
                f"google.oauth: client secrets file {error.filename} not found — create an OAuth "
                "client ID (Desktop app) in Google Cloud console, download its JSON and point "
                "google.oauth.client_secrets at it"
            ) from None
        except ValueError as error:
            raise SheetError(
                f"google.oauth: the stored sign-in cannot be used ({error}): delete it and sign in again"
            ) from None
        # gspread.oauth() only signs in; the requests go through our client. google-auth always
        # sends a stored sign-in's refresh to Google's token endpoint, hence the token_uri option.
        credentials = signed_in.http_client.auth
        signed_in.http_client.session.close()
        if self.options.get("token_uri") and isinstance(credentials, UserCredentials):
            credentials = credentials.with_token_uri(str(self.options["token_uri"]))
        return gspread.Client(auth=credentials, http_client=_as_class(factory))

    # error translation

    def _call(self, action: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        http = self._client()
        try:
            return function(*args, **kwargs)
        except APIError as error:
            raise self._api_error(error, action) from error
        except google.auth.exceptions.RefreshError as error:
            reason = error.args[0] if error.args else "refused"
            raise SheetError(
                f"could not get a Google access token for {self._who}: {reason} — the key may have "
                "been deleted or revoked: create a new key (or sign in again)"
            ) from error
        except (requests.RequestException, google.auth.exceptions.TransportError) as error:
            raise SheetUnavailable(
                f"could not reach Google Sheets at {urlsplit(http.endpoint).netloc} to {action} after "
                f"{_tries(http.last_attempts)} ({type(error).__name__}): check the network and run again"
            ) from error

    def _api_error(self, error: APIError, action: str) -> Exception:
        status = _status(error)
        message = str(error.error.get("message") or "").strip()
        tries = _tries(self._http.last_attempts if self._http else 1)
        if status == 400 and "exceeds grid limits" in message:
            return _GridTooSmall(message)
        if status == 400 and "Unable to parse range" in message:
            return SheetError(self._missing_tab())
        if status == 401:
            return SheetError(
                f"Google refused the credentials of {self._who} (401: {message[:120]}): check "
                "google.credentials (or sign in again with google.oauth)"
            )
        if status == 403:
            if "has not been used" in message or "is disabled" in message:
                return SheetError(f"the Google Sheets API is not enabled for the project: {message}")
            that = "account" if self.options.get("oauth") else "address"
            return SheetError(
                f"the sheet is not shared with {self._who} as Editor (reading may be allowed, "
                f"writing is not): share it with that {that} as Editor"
            )
        if status == 404:
            return SheetError(f"no spreadsheet with key {self.key} — check the URL")
        after = _retry_after(error)
        if status == 429 and after is not None and self._http and after > self._http.max_wait:
            return SheetUnavailable(
                f"Google Sheets quota exceeded (HTTP 429) and it asks to wait {after:.0f} s: run again later"
            )
        if status == 429:
            return SheetUnavailable(
                f"Google Sheets quota exceeded: still HTTP 429 after {tries} to {action} — "
                "wait a minute and run again"
            )
        if status in RETRY_STATUSES:
            return SheetUnavailable(
                f"Google Sheets is unavailable: HTTP {status} after {tries} to {action} — try again later"
            )
        return SheetError(
            f"Google Sheets refused to {action} {self.description}: HTTP {status}: {message[:200]}"
        )

    def _metadata(self) -> dict[str, Any]:
        http = self._client()
        metadata: dict[str, Any] = self._call(
            "read the spreadsheet's tabs",
            http.fetch_sheet_metadata,
            self.key,
            params={"fields": _METADATA_FIELDS},
        )
        self._meta = metadata
        return metadata

    def _missing_tab(self) -> str:
        try:
            tabs = [s["properties"]["title"] for s in self._metadata().get("sheets", [])]
        except SheetError:
            tabs = []
        listed = f" (tabs: {', '.join(repr(t) for t in tabs)})" if tabs else ""
        return f"no tab named {self._tab!r} in the spreadsheet{listed}: check the worksheet setting"

    def _tab_name(self) -> str:
        if self._tab is None:
            sheets = [s["properties"] for s in self._metadata().get("sheets", [])]
            if not sheets:
                raise SheetError(f"the spreadsheet {self.key} has no tabs")
            chosen = next((p for p in sheets if p.get("sheetId") == self._gid), None)
            if chosen is None:
                visible = [p for p in sheets if not p.get("hidden")] or sheets
                chosen = min(visible, key=lambda p: p.get("index", 0))
            self._tab = str(chosen["title"])
        return self._tab

    # reading

    def _fetch(self) -> SheetTable:
        tab = self._tab_name()
        http = self._client()
        # FORMULA: formulas as their text, every other cell unformatted (numbers as numbers);
        # dates as the text a person sees rather than day serial numbers.
        data = self._call(
            "read",
            http.values_batch_get,
            self.key,
            [quote_tab(tab)],
            params={
                "valueRenderOption": "FORMULA",
                "dateTimeRenderOption": "FORMATTED_STRING",
                "majorDimension": "ROWS",
            },
        )
        ranges = data.get("valueRanges") or [{}]
        return _table(ranges[0].get("values") or [])

    def read(self) -> SheetTable:
        self._meta = None
        fresh, self._fresh = self._fresh, None
        recent = fresh is not None and time.monotonic() - fresh[0] <= FRESH_FOR
        table = fresh[1] if fresh is not None and recent else self._fetch()
        self._last = _copy(table)
        return table

    def changed_since_read(self) -> bool:
        if self._last is None:
            return True
        table = self._fetch()
        self._fresh = (time.monotonic(), _copy(table))
        return _normalized(table) != _normalized(self._last)

    # the journal's mark

    def _sheet_entry(self, metadata: Mapping[str, Any]) -> Mapping[str, Any]:
        """The tab's entry in the spreadsheet's metadata (its properties, its developer metadata)."""
        tab = self._tab_name()
        sheets = [s for s in metadata.get("sheets", []) if isinstance(s, Mapping)]

        def title(entry: Mapping[str, Any]) -> str:
            return str(entry.get("properties", {}).get("title", ""))

        found = next((s for s in sheets if title(s) == tab), None)
        if found is None:
            found = next((s for s in sheets if title(s).casefold() == tab.casefold()), None)
        if found is None:
            raise SheetError(self._missing_tab())
        return found

    @staticmethod
    def _marks(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [m for m in entry.get("developerMetadata") or [] if m.get("metadataKey") == OWNER_KEY]

    def owner(self) -> str | None:
        """The mark in the tab's developer metadata (key `sheetorders.journal`): one metadata read,
        none when this pass has read the metadata already (to find the first tab)."""
        metadata = self._meta if self._meta is not None else self._metadata()
        marks = self._marks(self._sheet_entry(metadata))
        return str(marks[0].get("metadataValue", "")) if marks else None

    def claim(self, owner: str) -> None:
        """Put the mark on the tab in one spreadsheets:batchUpdate: create the developer metadata,
        or update the one there (and delete any other), so that the tab carries exactly one."""
        self._call("mark the sheet with its journal", self._send_claim, owner)
        self._meta = None

    def _send_claim(self, owner: str) -> None:
        http = self._client()
        url = SPREADSHEET_BATCH_UPDATE_URL % self.key
        retrying = http.retrying()
        metadata = self._meta
        try:
            for attempt in retrying:
                with attempt:
                    # A try that failed may have landed: read again, so that a retry adds no second mark.
                    if metadata is None or attempt.retry_state.attempt_number > 1:
                        metadata = self._metadata()
                    entry = self._sheet_entry(metadata)
                    sheet_id = int(entry["properties"]["sheetId"])
                    body = {"requests": _claim_requests(sheet_id, self._marks(entry), owner)}
                    http.request_once("post", url, json=body)
        finally:
            http.last_attempts = int(retrying.statistics.get("attempt_number", 1))

    # writing

    def check_writable(self, cells: Iterable[tuple[int, int]] = ()) -> None:
        """Refuse cells past column ZZZ, the most a Google sheet can have, and cells of a protected
        range this account may not edit (Google would refuse the whole write-back, after the
        orders were placed). One metadata read, none when the pass has read it already.

        Cells past the tab's current grid are fine (`write` adds the rows and columns).
        """
        metadata = self._meta if self._meta is not None else self._metadata()
        locked = _locked_ranges(self._sheet_entry(metadata))
        outside: set[tuple[int, int]] = set()
        protected: set[tuple[int, int]] = set()
        for row, column in cells:
            if column > MAX_COLUMN:
                outside.add((row, column))
            elif locked and any(lock.holds(row, column) for lock in locked):
                protected.add((row, column))
        if outside:
            raise SheetNotWritable(
                f"{self.description}: {cells_are(sorted(outside))} past the last column a Google sheet "
                "can have (ZZZ): clear the far-right cells, or add the output columns further left"
            )
        if protected:
            raise SheetNotWritable(
                f"{self.description}: {cells_are(sorted(protected))} in a protected range this account "
                "may not edit, and results go there: ask the spreadsheet's owner to add it as an "
                "editor of the range (Data > Protect sheets and ranges), or move the output columns"
            )

    def write(self, cells: list[CellWrite]) -> None:
        """Write the cells in one values:batchUpdate (RAW), in several when the body would be
        too big, adding rows and columns to the grid when needed.

        Between the read and a retry (after 429/5xx) or the next part, a person may have
        inserted, deleted or sorted rows: the tab is then read again first (one
        values:batchGet) and each cell goes to where its row is now. A row not found again
        is not written, and RowsNotFound names it once every other cell is; a changed header
        row stops the write (SheetChanged). A write that needs no retry costs no read. Without
        a `read` first there is nothing to compare with, and tries are repeated as they are.
        """
        self._fresh = None
        if not cells:
            return
        tab = quote_tab(self._tab_name())
        guard = _RowGuard(self._last, cells)
        lost: set[int] = set()
        for index, chunk in enumerate(_chunks(tab, cells, self.max_body_bytes)):
            try:
                lost |= self._call("write", self._send, tab, chunk, guard, index > 0)
            except _GridTooSmall:
                self._grow(max(c.row for c in cells), max(c.column for c in cells))
                try:
                    lost |= self._call("write", self._send, tab, chunk, guard, True)
                except _GridTooSmall as error:
                    raise SheetError(f"cannot write past the end of the sheet: {error}") from None
            if self._last is not None and not guard.moved:
                for block in chunk.blocks:
                    block.put_into(self._last)
        if guard.moved:
            self._last = None  # the caller's row numbers are out of date: changed_since_read says so
        jobs, self._after_write = self._after_write, []
        for job in jobs:
            job()
        if lost:
            rows = sorted(lost)
            which, verb = (
                (f"row {rows[0]}", "was") if len(rows) == 1 else (f"rows {', '.join(map(str, rows))}", "were")
            )
            raise RowsNotFound(
                f"{self.description}: {which} {verb} moved or edited while results were being written "
                f"and {verb} not found again: their cells were not written (every other cell was)",
                tuple(rows),
            )

    def _send(self, tab: str, chunk: _Chunk, guard: _RowGuard, check_first: bool) -> set[int]:
        """Send one chunk, trying again on 429/5xx; the rows are checked before every try but a
        first one with `check_first` false. Returns the rows not found (their cells not sent)."""
        http = self._client()
        url = SPREADSHEET_VALUES_BATCH_UPDATE_URL % self.key
        retrying = http.retrying()
        data, lost = chunk.data, set[int]()
        try:
            for attempt in retrying:
                with attempt:
                    if guard.basis is not None and (check_first or attempt.retry_state.attempt_number > 1):
                        guard.recheck(self._fetch(), self.description)
                        data, lost = chunk.data, set()
                        if guard.moves is not None:
                            placed, lost = guard.place(chunk.cells())
                            data = _data(tab, placed)
                    if data:
                        http.request_once("post", url, json={"valueInputOption": "RAW", "data": data})
        finally:
            http.last_attempts = int(retrying.statistics.get("attempt_number", 1))
        return lost

    def after_write(self, job: Callable[[], None]) -> None:
        """Have `job` run once, right after the next `write` has sent its cells: another tab the
        tool keeps is written after this tab's results, never before them."""
        self._after_write.append(job)

    def other_tab(self, title: str) -> GoogleSheetsBackend:
        """A backend for another tab of the same spreadsheet, over this one's connection (no second
        sign-in). Close this one, not it."""
        other = GoogleSheetsBackend(self.source, title, self.options, sleep=self._sleep)
        other._http, other._who = self._client(), self._who
        return other

    @property
    def tab_title(self) -> str:
        """The title of this backend's tab (the first one when none was named)."""
        return self._tab_name()

    def add_tab(self) -> bool:
        """Create this backend's tab (its `worksheet`) unless the spreadsheet has one of that name:
        one metadata read, and one spreadsheets:batchUpdate when it must be added (True)."""
        title = self.worksheet or ""
        tabs = [str(s["properties"]["title"]) for s in self._metadata().get("sheets", [])]
        if any(tab.casefold() == title.casefold() for tab in tabs):
            return False
        request = {"addSheet": {"properties": {"title": title}}}
        self._call("add a tab", self._client().batch_update, self.key, {"requests": [request]})
        self._meta = None
        return True

    def _grow(self, rows: int, columns: int) -> None:
        """Add rows/columns to the tab's grid so that (rows, columns) fits (Google does not)."""
        tab = self._tab_name()
        sheets = [s["properties"] for s in self._metadata().get("sheets", [])]
        props = next((p for p in sheets if p.get("title") == tab), None)
        if props is None:
            raise SheetError(self._missing_tab())
        grid = props.get("gridProperties") or {}
        http = self._client()
        request = {
            "updateSheetProperties": {
                "properties": {
                    "sheetId": props["sheetId"],
                    "gridProperties": {
                        "rowCount": max(int(grid.get("rowCount", 0)), rows),
                        "columnCount": max(int(grid.get("columnCount", 0)), columns),
                    },
                },
                "fields": "gridProperties.rowCount,gridProperties.columnCount",
            }
        }
        self._call("add rows or columns", http.batch_update, self.key, {"requests": [request]})

    def close(self) -> None:
        if self._http is not None:
            self._http.session.close()
            self._http = None


@dataclass(frozen=True)
class _Grid:
    """A GridRange of the API: 0-based, end-exclusive indices, None for no bound."""

    start_row: int
    end_row: int | None
    start_column: int
    end_column: int | None

    @classmethod
    def of(cls, grid: Mapping[str, Any]) -> _Grid:
        def index(name: str) -> int | None:
            value = grid.get(name)
            return int(value) if value is not None else None

        start_row, start_column = index("startRowIndex") or 0, index("startColumnIndex") or 0
        return cls(start_row, index("endRowIndex"), start_column, index("endColumnIndex"))

    def holds(self, row: int, column: int) -> bool:
        """Whether 1-based (row, column) lies in it."""
        return (
            self.start_row < row
            and (self.end_row is None or row <= self.end_row)
            and self.start_column < column
            and (self.end_column is None or column <= self.end_column)
        )


@dataclass(frozen=True)
class _Lock:
    """A protected range this account may not edit, less its unprotected holes."""

    area: _Grid
    holes: tuple[_Grid, ...]

    def holds(self, row: int, column: int) -> bool:
        return self.area.holds(row, column) and not any(hole.holds(row, column) for hole in self.holes)


def _locked_ranges(entry: Mapping[str, Any]) -> list[_Lock]:
    """The tab's protected ranges that refuse this account's writes (a range that only warns
    takes them)."""
    return [
        _Lock(_Grid.of(p.get("range") or {}), tuple(_Grid.of(h) for h in p.get("unprotectedRanges") or []))
        for p in entry.get("protectedRanges") or []
        if isinstance(p, Mapping) and not p.get("requestingUserCanEdit") and not p.get("warningOnly")
    ]


def _claim_requests(sheet_id: int, marks: list[Mapping[str, Any]], owner: str) -> list[dict[str, Any]]:
    """The batchUpdate requests that leave exactly one mark, `owner`, on the tab `sheet_id`."""
    if not marks:
        mark = {
            "metadataKey": OWNER_KEY,
            "metadataValue": owner,
            "location": {"sheetId": sheet_id},
            "visibility": "DOCUMENT",
        }
        return [{"createDeveloperMetadata": {"developerMetadata": mark}}]
    first, *others = marks
    found: list[dict[str, Any]] = [
        {
            "updateDeveloperMetadata": {
                "dataFilters": [{"developerMetadataLookup": {"metadataId": first["metadataId"]}}],
                "developerMetadata": {"metadataValue": owner},
                "fields": "metadataValue",
            }
        }
    ]
    for other in others:
        lookup = {"developerMetadataLookup": {"metadataId": other["metadataId"]}}
        found.append({"deleteDeveloperMetadata": {"dataFilter": lookup}})
    return found


def _put(table: SheetTable, row: int, column: int, value: Cell) -> None:
    if row == 1:
        cells = table.headers
    else:
        while len(table.rows) < row - 1:
            table.rows.append([])
        cells = table.rows[row - 2]
    while len(cells) < column:
        cells.append(None)
    cells[column - 1] = value
