"""GoogleSheetsBackend through gspread's real HTTP client against FakeSheetsServer over HTTP."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from sheetorders.errors import ExitCode, RowsNotFound, SheetChanged, SheetError, SheetNotWritable
from sheetorders.sheets.base import CellWrite
from sheetorders.sheets.google import GoogleSheetsBackend, _RoutedSession, spreadsheet_key
from sheetorders.testing.sheets_server import (
    SERVICE_ACCOUNT_EMAIL,
    FakeSheetsServer,
    google_options,
    make_authorized_user_file,
    make_service_account_file,
)

KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
HEADER = ["link", "quantity", "total", "note"]


@pytest.fixture(scope="module")
def sheets_api() -> Iterator[FakeSheetsServer]:
    with FakeSheetsServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean(sheets_api: FakeSheetsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    sheets_api.clear_faults()
    sheets_api.token_error = None
    sheets_api.reset_calls()
    # Nothing may leave this machine: any name lookup but localhost's is recorded and fails.
    outside: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost"):
            outside.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "blocked by the test")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    yield
    sheets_api.clear_faults()
    sheets_api.token_error = None
    assert outside == []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def options(sheets_api: FakeSheetsServer, tmp_path: Path) -> dict[str, Any]:
    return google_options(sheets_api, tmp_path)


@pytest.fixture
def open_sheet(options: dict[str, Any], sleeps: list[float]) -> Iterator[Callable[..., GoogleSheetsBackend]]:
    opened: list[GoogleSheetsBackend] = []

    def make(source: str, worksheet: str | None = "Orders", **extra: Any) -> GoogleSheetsBackend:
        backend = GoogleSheetsBackend(source, worksheet, {**options, **extra}, sleep=sleeps.append)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def orders(sheets_api: FakeSheetsServer, rows: list[list[Any]] | None = None, **kwargs: Any) -> str:
    return sheets_api.create_spreadsheet("Orders", {"Orders": [HEADER, *(rows or [])]}, **kwargs)


# --- accepts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0",
        f"https://docs.google.com/spreadsheets/d/{KEY}",
        f"https://docs.google.com/spreadsheets/u/1/d/{KEY}/edit?usp=sharing",
        KEY,
    ],
)
def test_accepts_urls_and_keys(source: str) -> None:
    assert GoogleSheetsBackend.accepts(source)
    assert spreadsheet_key(source) == KEY


@pytest.mark.parametrize(
    "source",
    [
        "orders.xlsx",
        "orders.csv",
        f"sheets/{KEY}",
        f"{KEY}.csv",
        "short_key",
        "https://example.com/spreadsheets/d/" + KEY,
        "",
    ],
)
def test_rejects_paths_and_other_urls(source: str) -> None:
    assert not GoogleSheetsBackend.accepts(source)


def test_an_existing_file_named_like_a_key_is_not_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / KEY).write_text("link\n")
    assert not GoogleSheetsBackend.accepts(KEY)


# --- read ------------------------------------------------------------------------------


def test_read_is_one_call_with_numbers_as_numbers_and_formulas_as_text(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(
        sheets_api,
        [
            ["https://a", 1000, "=1+2", True],
            ["https://b", 2.5, None, "x"],
            ["https://c", "007", "", datetime(2024, 5, 1, 9, 30)],
        ],
    )
    table = open_sheet(key).read()

    assert table.headers == HEADER
    assert table.rows[0] == ["https://a", 1000, "=1+2", True]
    assert type(table.rows[0][1]) is int
    assert table.rows[1] == ["https://b", 2.5, None, "x"]
    assert table.rows[2] == ["https://c", "007", None, "2024-05-01 09:30:00"]
    assert sheets_api.calls == Counter({"token": 1, "values.batchGet": 1})
    query = sheets_api.requests[-1].query
    assert query["valueRenderOption"] == ["FORMULA"]
    assert query["ranges"] == ["'Orders'"]
    assert [grant["scope"] for grant in sheets_api.token_grants[-1:]] == [
        "https://www.googleapis.com/auth/spreadsheets"
    ]


@pytest.mark.parametrize("host", ["iamcredentials.googleapis.com", "iamcredentials.mtls.googleapis.com"])
def test_google_auths_own_lookups_go_to_the_endpoint(sheets_api: FakeSheetsServer, host: str) -> None:
    # google-auth may look up a service account's allowed locations on its own (some releases
    # do it in a background thread, some only when asked): whatever it asks of a Google auth
    # host through the session we give it reaches the configured endpoint instead, copies included.
    session = _RoutedSession(sheets_api.base_url)
    path = f"/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT_EMAIL}/allowedLocations"
    sheets_api.background_calls.clear()
    for each in (session, copy.deepcopy(session)):
        each.get(f"https://{host}{path}", timeout=5)
    assert sheets_api.background_calls["allowedLocations"] == 2


def test_used_width_counts_unlabeled_cells(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2, None, None, "call Bob", "urgent"]])
    table = open_sheet(key).read()
    assert (len(table.headers), table.used_width) == (4, 6)


def test_read_of_an_empty_tab(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = sheets_api.create_spreadsheet("Empty", {"Orders": []})
    table = open_sheet(key).read()
    assert (table.headers, table.rows) == ([], [])


def test_tab_names_with_quotes_and_spaces(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = sheets_api.create_spreadsheet("T", {"Bob's orders": [["link"], ["x"]]})
    backend = open_sheet(key, "Bob's orders")
    assert backend.read().rows == [["x"]]
    backend.write([CellWrite(2, 2, "ok")])
    assert sheets_api.values(key, "Bob's orders") == [["link"], ["x", "ok"]]


def test_without_a_worksheet_the_first_visible_tab_is_used(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = sheets_api.create_spreadsheet("T", {"Main": [["link"], ["m"]], "Other": [["link"], ["o"]]})
    backend = open_sheet(key, None)
    assert backend.read().rows == [["m"]]
    assert sheets_api.calls == Counter({"token": 1, "metadata": 1, "values.batchGet": 1})
    assert backend.description.endswith("[Main]")


def test_the_url_gid_picks_the_tab(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = sheets_api.create_spreadsheet("T", {"Main": [["link"], ["m"]], "Other": [["link"], ["o"]]})
    gid = sheets_api.sheet_properties(key, "Other")["sheetId"]
    url = f"https://docs.google.com/spreadsheets/d/{key}/edit#gid={gid}"
    assert open_sheet(url, None).read().rows == [["o"]]


# --- write -----------------------------------------------------------------------------


def test_write_is_raw(sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]) -> None:
    key = orders(sheets_api, [["https://a", 10], ["https://b", 20]])
    backend = open_sheet(key)
    backend.read()
    backend.write(
        [
            CellWrite(2, 3, "=1+1"),
            CellWrite(2, 4, "00123"),
            CellWrite(3, 3, Decimal("1.25")),
            CellWrite(3, 4, datetime(2024, 1, 2, 3, 4, 5)),
            CellWrite(3, 2, None),
            CellWrite(1, 5, "status"),
        ]
    )

    assert sheets_api.values(key, "Orders") == [
        [*HEADER, "status"],
        ["https://a", 10, "=1+1", "00123"],
        ["https://b", None, 1.25, "2024-01-02 03:04:05"],
    ]
    assert not sheets_api.is_formula(key, "Orders", 2, 3)
    assert sheets_api.calls["values.batchUpdate"] == 1
    body = sheets_api.requests[-1].json()
    assert body["valueInputOption"] == "RAW"


def test_a_formula_written_raw_reads_back_as_text(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], options: dict[str, Any]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.write([CellWrite(2, 3, "=1+1")])
    assert backend.read().rows[0][2] == "=1+1"
    # The computed value tells a formula from a string: a formula would give 2.
    token = _token(sheets_api)
    answer = requests.get(
        f"{sheets_api.base_url}/v4/spreadsheets/{key}/values/Orders!C2",
        params={"valueRenderOption": "UNFORMATTED_VALUE"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    assert answer["values"] == [["=1+1"]]


def test_writing_a_thousand_rows_is_one_call(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [[f"https://x/{i}", i + 1] for i in range(1000)])
    backend = open_sheet(key)
    backend.read()
    cells = [CellWrite(1, 5, "ref"), CellWrite(1, 6, "order_id"), CellWrite(1, 7, "status")]
    for i in range(1000):
        row = i + 2
        cells += [CellWrite(row, 5, f"r{i}"), CellWrite(row, 6, 9000 + i), CellWrite(row, 7, "Pending")]
    sheets_api.reset_calls()
    backend.write(cells)

    assert sheets_api.calls == Counter({"values.batchUpdate": 1})
    assert len(sheets_api.requests[-1].json()["data"]) == 1  # one rectangle E1:G1001
    values = sheets_api.values(key, "Orders")
    assert values[1000] == ["https://x/999", 1000, None, None, "r999", 9999, "Pending"]

    # Scattered cells (each row a different column) are still one call.
    sheets_api.reset_calls()
    backend.write([CellWrite(r, 8 + r % 3, "x") for r in range(2, 1002)])
    assert sheets_api.calls == Counter({"values.batchUpdate": 1})

    sheets_api.reset_calls()
    assert len(backend.read().rows) == 1000
    assert sheets_api.calls == Counter({"values.batchGet": 1})


def test_a_huge_write_is_split_by_body_size(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [[f"https://x/{i}"] for i in range(200)])
    backend = open_sheet(key)
    backend.max_body_bytes = 2_000
    # Rows 2, 4, 6... so that no two rows stack into one range.
    backend.write([CellWrite(r, 5, "e" * 20) for r in range(2, 202, 2)])
    assert sheets_api.calls["values.batchUpdate"] > 1
    assert all(len(r.body) < 2_200 for r in sheets_api.requests if r.kind == "values.batchUpdate")
    values = sheets_api.values(key, "Orders")
    assert [values[r - 1][4] for r in range(2, 202, 2)] == ["e" * 20] * 100


def test_nothing_to_write_is_no_call(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    open_sheet(orders(sheets_api)).write([])
    assert sheets_api.calls == Counter()


def test_writing_past_the_grid_adds_columns(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    header = [f"c{i}" for i in range(26)]
    key = sheets_api.create_spreadsheet("Wide", {"Orders": [header, ["x"] * 26]})
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    backend.write([CellWrite(1, 27, "ref"), CellWrite(2, 27, "r1")])

    assert sheets_api.values(key, "Orders")[1][26] == "r1"
    assert sheets_api.sheet_properties(key, "Orders")["gridProperties"]["columnCount"] == 27
    # The rows are checked again before the write is sent a second time.
    assert sheets_api.calls == Counter(
        {"values.batchUpdate": 2, "metadata": 1, "batchUpdate": 1, "values.batchGet": 1}
    )


def test_check_writable_reads_the_tabs_once_and_refuses_past_the_last_column(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    # Past the tab's grid is fine: the write adds columns. Past Google's 18,278 columns is not.
    backend.check_writable([(1, 27), (2, 27), (2, 18_278)])
    with pytest.raises(SheetNotWritable) as raised:
        backend.check_writable([(1, 18_279), (2, 18_280)])
    assert str(raised.value) == (
        f"{backend.description}: cells AAAA1, AAAB2 are past the last column a Google sheet can "
        "have (ZZZ): clear the far-right cells, or add the output columns further left"
    )
    assert sheets_api.calls == Counter({"metadata": 1})  # its protected ranges, once


def test_check_writable_refuses_the_cells_of_a_range_protected_from_this_account(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2]])
    # Column C from row 2 down, protected; a range this account edits, and one that only warns.
    sheets_api.protect(key, "Orders", {"startRowIndex": 1, "startColumnIndex": 2, "endColumnIndex": 3})
    sheets_api.protect(key, "Orders", {"startColumnIndex": 3, "endColumnIndex": 4}, caller_can_edit=True)
    sheets_api.protect(key, "Orders", {"startColumnIndex": 4, "endColumnIndex": 5}, warning_only=True)
    backend = open_sheet(key)
    backend.read()

    backend.check_writable([(1, 3), (2, 4), (3, 5), (2, 6)])
    with pytest.raises(SheetNotWritable) as raised:
        backend.check_writable([(1, 3), (2, 3), (3, 3), (3, 4)])

    assert str(raised.value) == (
        f"{backend.description}: cells C2, C3 are in a protected range this account may not edit, "
        "and results go there: ask the spreadsheet's owner to add it as an editor of the range "
        "(Data > Protect sheets and ranges), or move the output columns"
    )


def test_a_tab_protected_but_for_its_order_columns_refuses_the_results_outside_them(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    sheets_api.protect(key, "Orders", None, unprotected=[{"startColumnIndex": 0, "endColumnIndex": 4}])
    backend = open_sheet(key)
    backend.read()

    backend.check_writable([(2, 1), (2, 4)])
    with pytest.raises(SheetNotWritable, match="cell E2 is in a protected range"):
        backend.check_writable([(2, 4), (2, 5)])


# --- retries ---------------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], sleeps: list[float]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    sheets_api.fail_next(status=429, count=2, retry_after=3)
    table = open_sheet(key).read()

    assert table.rows == [["https://a", 1]]
    assert len(sleeps) == 2
    assert all(s >= 3 for s in sleeps)
    assert sheets_api.calls == Counter({"token": 1, "values.batchGet": 3})


def test_5xx_and_html_answers_are_retried(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], sleeps: list[float]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    sheets_api.fail_next(status=500, kind="values.batchUpdate")
    sheets_api.fail_next(status=502, kind="values.batchUpdate")
    sheets_api.fail_next(status=503, kind="values.batchUpdate")
    backend.write([CellWrite(2, 4, "done")])

    assert sheets_api.values(key, "Orders")[1] == ["https://a", 1, None, "done"]
    assert sheets_api.calls == Counter({"values.batchUpdate": 4, "values.batchGet": 3})  # a check per retry
    assert len(sleeps) == 3
    assert 1 <= sleeps[0] <= 2 and 2 <= sleeps[1] <= 3 and 4 <= sleeps[2] <= 5  # backoff with jitter


def test_attempts_are_bounded(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], sleeps: list[float]
) -> None:
    key = orders(sheets_api)
    sheets_api.fail_next(status=503, count=10)
    with pytest.raises(SheetError, match=r"unavailable: HTTP 503 after 3 attempts") as raised:
        open_sheet(key, max_attempts=3).read()
    assert raised.value.exit_code == ExitCode.PANEL_UNREACHABLE  # unreachable, not a config error
    assert sheets_api.calls["values.batchGet"] == 3
    assert len(sleeps) == 2


def test_quota_errors_that_persist_say_so(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api)
    sheets_api.fail_next(status=429, count=10, retry_after=1)
    with pytest.raises(SheetError, match=r"quota exceeded: still HTTP 429 after 4 attempts"):
        open_sheet(key, max_attempts=4).read()
    assert sheets_api.calls["values.batchGet"] == 4


def test_a_retry_after_longer_than_max_wait_gives_up_at_once(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], sleeps: list[float]
) -> None:
    key = orders(sheets_api)
    sheets_api.fail_next(status=429, count=5, retry_after=3600)
    with pytest.raises(SheetError, match=r"\(HTTP 429\) and it asks to wait 3600 s: run again later"):
        open_sheet(key, max_wait=60).read()
    assert sheets_api.calls["values.batchGet"] == 1
    assert sleeps == []


def test_dropped_connections_and_timeouts_are_retried(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], sleeps: list[float]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key, timeout=0.2)
    sheets_api.fail_next(status=None, disconnect=True, kind="values.batchGet")
    sheets_api.fail_next(status=None, delay=0.5, kind="values.batchGet")
    assert backend.read().rows == [["https://a", 1]]
    assert sheets_api.calls["values.batchGet"] == 3
    assert len(sleeps) == 2


def test_an_unreachable_endpoint_is_a_sheet_error(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], tmp_path: Path
) -> None:
    with FakeSheetsServer() as gone:
        dead = gone.base_url
    key = orders(sheets_api)
    with pytest.raises(
        SheetError, match=r"could not reach Google Sheets at 127\.0\.0\.1:\d+ to read after 2"
    ):
        open_sheet(key, api_endpoint=dead, max_attempts=2).read()


# --- a retried or split write stays on its rows ------------------------------------------


def _links_and_refs(sheets_api: FakeSheetsServer, key: str) -> list[tuple[Any, Any]]:
    values = sheets_api.values(key, "Orders")
    return [(row[0] if row else None, row[4] if len(row) > 4 else None) for row in values]


def _refs(rows: range) -> list[CellWrite]:
    return [CellWrite(1, 5, "ref"), *(CellWrite(r, 5, f"ref-{r}") for r in rows)]


@pytest.mark.parametrize("status", [500, 429, 503])
def test_a_retried_write_goes_to_where_the_rows_are_now(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], status: int
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2], ["https://c", 3]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    # A person inserts a row above while the write waits for its second try.
    insert = lambda: sheets_api.insert_rows(key, "Orders", 2, [["https://new", 9]])  # noqa: E731
    sheets_api.fail_next(status=status, kind="values.batchUpdate", edit=insert)
    backend.write(_refs(range(2, 5)))

    assert _links_and_refs(sheets_api, key) == [
        ("link", "ref"),
        ("https://new", None),
        ("https://a", "ref-2"),
        ("https://b", "ref-3"),
        ("https://c", "ref-4"),
    ]
    assert sheets_api.calls == Counter({"values.batchUpdate": 2, "values.batchGet": 1})
    assert backend.changed_since_read()  # the caller's row numbers are out of date now


def test_a_retry_when_nobody_moved_rows_writes_the_same_cells(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2], ["https://c", 3]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    edit = lambda: sheets_api.set_cell(key, "Orders", 4, 4, "a note")  # noqa: E731
    sheets_api.fail_next(status=500, kind="values.batchUpdate", edit=edit)
    backend.write(_refs(range(2, 4)))
    assert _links_and_refs(sheets_api, key) == [
        ("link", "ref"),
        ("https://a", "ref-2"),
        ("https://b", "ref-3"),
        ("https://c", None),
    ]
    bodies = [r.json() for r in sheets_api.requests if r.kind == "values.batchUpdate"]
    assert bodies[0] == bodies[1]
    assert backend.changed_since_read()  # the note is someone else's edit


def test_each_part_of_a_split_write_goes_to_where_the_rows_are_now(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [[f"https://x/{r}"] for r in range(2, 42)])
    backend = open_sheet(key)
    backend.read()
    backend.max_body_bytes = 400
    cells = [CellWrite(r, 5, f"ref-{r}") for r in range(2, 42, 2)]  # every other row: one range each
    sheets_api.reset_calls()
    # Right after the first part lands, a person inserts two rows at the top.
    insert = lambda: sheets_api.insert_rows(key, "Orders", 2, [["https://new1"], ["https://new2"]])  # noqa: E731
    sheets_api.fail_next(status=None, kind="values.batchUpdate", edit=insert)
    backend.write(cells)

    written = {link: ref for link, ref in _links_and_refs(sheets_api, key)[1:] if ref}
    assert written == {f"https://x/{r}": f"ref-{r}" for r in range(2, 42, 2)}
    parts = sheets_api.calls["values.batchUpdate"]
    assert parts > 2
    assert sheets_api.calls["values.batchGet"] == parts - 1  # one check before each next part


def test_a_row_edited_or_deleted_during_a_retry_is_left_alone(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2], ["https://c", 3], ["https://d", 4]])
    backend = open_sheet(key)
    backend.read()

    def edit() -> None:
        sheets_api.delete_rows(key, "Orders", 3)  # https://b
        sheets_api.set_cell(key, "Orders", 3, 2, 30)  # https://c, now row 3: its quantity

    sheets_api.fail_next(status=500, kind="values.batchUpdate", edit=edit)
    with pytest.raises(RowsNotFound) as raised:
        backend.write(_refs(range(2, 6)))
    assert raised.value.rows == (3, 4)
    assert str(raised.value) == (
        f"{backend.description}: rows 3, 4 were moved or edited while results were being written "
        "and were not found again: their cells were not written (every other cell was)"
    )
    assert _links_and_refs(sheets_api, key) == [
        ("link", "ref"),
        ("https://a", "ref-2"),
        ("https://c", None),
        ("https://d", "ref-5"),
    ]


def test_identical_rows_are_relocated_only_when_none_was_added_or_removed(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    same = ["https://same", 1]
    key = orders(sheets_api, [same, same, ["https://other", 2]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.fail_next(
        status=500, kind="values.batchUpdate", edit=lambda: sheets_api.insert_rows(key, "Orders", 2, [same])
    )
    with pytest.raises(RowsNotFound) as raised:
        backend.write(_refs(range(2, 5)))
    assert raised.value.rows == (2, 3)
    assert _links_and_refs(sheets_api, key)[1:] == [
        ("https://same", None),
        ("https://same", None),
        ("https://same", None),
        ("https://other", "ref-4"),
    ]


def test_a_header_changed_during_a_retry_stops_the_write(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.read()
    edit = lambda: sheets_api.set_cell(key, "Orders", 1, 2, "qty")  # noqa: E731
    sheets_api.fail_next(status=500, kind="values.batchUpdate", edit=edit)
    with pytest.raises(SheetChanged, match=r"the header row changed while results were being written"):
        backend.write(_refs(range(2, 3)))
    assert sheets_api.values(key, "Orders") == [["link", "qty", "total", "note"], ["https://a", 1]]


# --- changed_since_read ------------------------------------------------------------------


def test_changed_since_read_sees_inserted_rows_and_the_next_read_is_free(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1], ["https://b", 2]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.reset_calls()
    assert backend.changed_since_read() is False
    assert sheets_api.calls == Counter({"values.batchGet": 1})

    sheets_api.insert_rows(key, "Orders", 2, [["https://new", 5]])
    sheets_api.reset_calls()
    assert backend.changed_since_read() is True
    table = backend.read()
    assert sheets_api.calls == Counter({"values.batchGet": 1})
    assert [row[0] for row in table.rows] == ["https://new", "https://a", "https://b"]

    sheets_api.reset_calls()
    backend.read()  # the remembered table is used once only
    assert sheets_api.calls == Counter({"values.batchGet": 1})


def test_changed_since_read_sees_an_edited_cell_but_not_our_own_write(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.read()
    backend.write([CellWrite(2, 5, "r1"), CellWrite(2, 6, 12345), CellWrite(2, 7, Decimal("0.50"))])
    assert backend.changed_since_read() is False

    sheets_api.set_cell(key, "Orders", 2, 2, 3)
    assert backend.changed_since_read() is True


def test_changed_since_read_before_any_read_is_true(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    assert open_sheet(orders(sheets_api)).changed_since_read() is True
    assert sheets_api.calls == Counter()


# --- errors ------------------------------------------------------------------------------


def test_a_sheet_not_shared_names_the_service_account(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, shared=False)
    with pytest.raises(SheetError) as raised:
        open_sheet(key).read()
    assert str(raised.value) == (
        f"the sheet is not shared with {SERVICE_ACCOUNT_EMAIL} as Editor (reading may be allowed, "
        "writing is not): share it with that address as Editor"
    )
    assert sheets_api.calls["values.batchGet"] == 1  # 403 is not retried


def test_an_unknown_key(sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]) -> None:
    with pytest.raises(SheetError, match=f"no spreadsheet with key {KEY} — check the URL"):
        open_sheet(KEY).read()


def test_a_missing_tab_lists_the_tabs(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = sheets_api.create_spreadsheet("T", {"Orders": [HEADER], "Archive": []})
    with pytest.raises(SheetError) as raised:
        open_sheet(key, "Missing").read()
    assert str(raised.value).startswith(
        "no tab named 'Missing' in the spreadsheet (tabs: 'Orders', 'Archive')"
    )
    assert sheets_api.calls == Counter({"token": 1, "values.batchGet": 1, "metadata": 1})


def test_a_missing_credentials_file(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api)
    with pytest.raises(SheetError) as raised:
        open_sheet(key, credentials="service-account.json").read()
    assert str(raised.value) == (
        "google.credentials: service-account.json not found — create a key for the service account in "
        "Google Cloud console and point google.credentials at it"
    )
    assert sheets_api.calls == Counter()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ('{"installed": {"client_id": "x"}}', "is an OAuth client file, not a service-account key"),
        ('{"type": "service_account", "client_email": "a@b"}', "missing private_key, token_uri"),
        (
            '{"type": "service_account", "client_email": "a@b", "private_key": "nope", "token_uri": "x"}',
            "has a private key that cannot be loaded",
        ),
    ],
)
def test_malformed_key_files(
    sheets_api: FakeSheetsServer,
    open_sheet: Callable[..., GoogleSheetsBackend],
    tmp_path: Path,
    content: str,
    expected: str,
) -> None:
    path = tmp_path / "key.json"
    path.write_text(content)
    with pytest.raises(SheetError, match=expected) as raised:
        open_sheet(orders(sheets_api), credentials=str(path)).read()
    assert "nope" not in str(raised.value)


def test_no_credentials_configured(
    sheets_api: FakeSheetsServer,
    open_sheet: Callable[..., GoogleSheetsBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(SheetError, match=r"google\.credentials is not set"):
        open_sheet(orders(sheets_api), credentials=None).read()


def test_a_refused_token_exchange(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api)
    sheets_api.token_error = ("invalid_grant", "Invalid JWT Signature.")
    with pytest.raises(SheetError) as raised:
        open_sheet(key).read()
    message = str(raised.value)
    assert message.startswith(
        f"could not get a Google access token for {SERVICE_ACCOUNT_EMAIL}: invalid_grant"
    )
    assert "BEGIN PRIVATE KEY" not in message


def test_an_expired_token_is_renewed(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key)
    backend.read()
    sheets_api.expire_tokens()
    assert backend.read().rows == [["https://a", 1]]
    assert sheets_api.calls == Counter({"token": 2, "values.batchGet": 3})


def test_a_401_that_persists(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend]
) -> None:
    key = orders(sheets_api)
    sheets_api.fail_next(status=401, count=5, message="Request had invalid authentication credentials.")
    with pytest.raises(SheetError, match=f"Google refused the credentials of {SERVICE_ACCOUNT_EMAIL} \\(401"):
        open_sheet(key).read()


# --- configuration -----------------------------------------------------------------------


def test_the_endpoint_from_the_environment(
    sheets_api: FakeSheetsServer,
    open_sheet: Callable[..., GoogleSheetsBackend],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHEETORDERS_GOOGLE_API_ENDPOINT", sheets_api.base_url)
    key = orders(sheets_api, [["https://a", 1]])
    assert open_sheet(key, api_endpoint=None).read().rows == [["https://a", 1]]


def test_the_token_uri_option_overrides_the_key_file(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], tmp_path: Path
) -> None:
    path = make_service_account_file(tmp_path / "real.json", "https://oauth2.googleapis.com/token")
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(key, credentials=str(path), token_uri=sheets_api.token_uri)
    assert backend.read().rows == [["https://a", 1]]
    assert sheets_api.calls["token"] == 1


def test_oauth_with_a_stored_sign_in(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], tmp_path: Path
) -> None:
    user = make_authorized_user_file(tmp_path / "authorized_user.json", sheets_api.token_uri)
    key = orders(sheets_api, [["https://a", 1]])
    backend = open_sheet(
        key,
        credentials=None,
        oauth={"client_secrets": str(tmp_path / "client.json"), "authorized_user": str(user)},
        token_uri=sheets_api.token_uri,
    )
    assert backend.read().rows == [["https://a", 1]]
    assert sheets_api.token_grants[-1]["grant_type"] == "refresh_token"
    sheets_api.share(key, False)
    with pytest.raises(SheetError, match="not shared with the Google account you signed in with"):
        backend.read()


def test_oauth_without_client_secrets(
    sheets_api: FakeSheetsServer, open_sheet: Callable[..., GoogleSheetsBackend], tmp_path: Path
) -> None:
    oauth = {"client_secrets": str(tmp_path / "none.json"), "authorized_user": str(tmp_path / "au.json")}
    with pytest.raises(SheetError, match=r"client secrets file .*none\.json not found"):
        open_sheet(orders(sheets_api), credentials=None, oauth=oauth).read()


def test_the_test_key_file_helper(sheets_api: FakeSheetsServer, tmp_path: Path) -> None:
    path = make_service_account_file(tmp_path / "sa.json", sheets_api.token_uri)
    info = json.loads(path.read_text())
    assert info["type"] == "service_account"
    assert info["token_uri"] == sheets_api.token_uri
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


# --- the fake itself ---------------------------------------------------------------------


def _token(sheets_api: FakeSheetsServer) -> str:
    import base64

    claims = base64.urlsafe_b64encode(json.dumps({"iss": "t@example.com"}).encode()).decode().rstrip("=")
    answer = requests.post(
        sheets_api.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": f"e30.{claims}.sig"},
        timeout=5,
    )
    return str(answer.json()["access_token"])


def _get(sheets_api: FakeSheetsServer, path: str, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{sheets_api.base_url}{path}", params=params, headers=headers, timeout=5)


def test_fake_ranges_and_render_options(sheets_api: FakeSheetsServer) -> None:
    key = sheets_api.create_spreadsheet(
        "T", {"Orders": [["a", "b", "c"], [1, 2.5, "=1+2"], [None, True]], "My Tab": [["x", "y"]]}
    )
    token = _token(sheets_api)
    base = f"/v4/spreadsheets/{key}/values/"

    def values(text: str, **params: Any) -> Any:
        answer = _get(sheets_api, base + requests.utils.quote(text, safe=""), token, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert values("Orders!A2:C2")["values"] == [["1", "2.5", "3"]]
    assert values("Orders!A2:C2", valueRenderOption="UNFORMATTED_VALUE")["values"] == [[1, 2.5, 3]]
    assert values("Orders!A2:C2", valueRenderOption="FORMULA")["values"] == [[1, 2.5, "=1+2"]]
    assert values("Orders!C2")["values"] == [["3"]]
    assert values("Orders!B:B", majorDimension="COLUMNS")["values"] == [["b", "2.5", "TRUE"]]
    assert values("'My Tab'!A1:Z")["values"] == [["x", "y"]]
    assert values("'My Tab'!A1:Z")["range"] == "'My Tab'!A1:Z1000"
    assert values("A1:B1")["values"] == [["a", "b"]]  # no tab: the first one
    assert values("Orders!A3:B3")["values"] == [["", "TRUE"]]

    too_wide = _get(sheets_api, base + requests.utils.quote("Orders!A:AB", safe=""), token)
    assert too_wide.status_code == 400
    assert "exceeds grid limits" in too_wide.json()["error"]["message"]
    missing = _get(sheets_api, base + requests.utils.quote("Missing!A1", safe=""), token)
    assert missing.json() == {
        "error": {"code": 400, "message": "Unable to parse range: Missing!A1", "status": "INVALID_ARGUMENT"}
    }


def test_fake_user_entered_and_raw_writes(sheets_api: FakeSheetsServer) -> None:
    key = sheets_api.create_spreadsheet("T", {"Orders": [["a"]]})
    token = _token(sheets_api)
    url = f"{sheets_api.base_url}/v4/spreadsheets/{key}/values:batchUpdate"
    body = {
        "valueInputOption": "USER_ENTERED",
        "data": [{"range": "Orders!A2:D2", "values": [["12", "1.5", "=2*3", "TRUE"]]}],
    }
    answer = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    assert answer["totalUpdatedCells"] == 4
    assert answer["responses"][0]["updatedRange"] == "Orders!A2:D2"
    assert sheets_api.values(key, "Orders")[1] == [12, 1.5, "=2*3", True]
    assert sheets_api.is_formula(key, "Orders", 2, 3)

    body = {"valueInputOption": "RAW", "data": [{"range": "Orders!A3", "values": [["12", "=2*3"]]}]}
    requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert sheets_api.values(key, "Orders")[2] == ["12", "=2*3"]
    assert not sheets_api.is_formula(key, "Orders", 3, 2)


def test_fake_auth_errors_and_metadata(sheets_api: FakeSheetsServer) -> None:
    key = sheets_api.create_spreadsheet("Title", {"Orders": [["a"]], "Other": []})
    path = f"/v4/spreadsheets/{key}"
    assert _get(sheets_api, path, None).json()["error"]["status"] == "UNAUTHENTICATED"
    assert _get(sheets_api, path, "bogus").status_code == 401
    meta = _get(sheets_api, path, _token(sheets_api), fields="sheets.properties").json()
    assert meta["properties"]["title"] == "Title"
    assert [s["properties"]["title"] for s in meta["sheets"]] == ["Orders", "Other"]
    assert meta["sheets"][0]["properties"]["gridProperties"] == {"rowCount": 1000, "columnCount": 26}
    assert sheets_api.calls["metadata"] == 3


def test_fake_spreadsheet_batch_update(sheets_api: FakeSheetsServer) -> None:
    key = sheets_api.create_spreadsheet("T", {"Orders": [["a"]]})
    token = _token(sheets_api)
    grid = {"sheetId": 0, "startRowIndex": 1, "startColumnIndex": 0, "endColumnIndex": 1}
    requests_ = [
        {"addSheet": {"properties": {"title": "Log"}}},
        {"setDataValidation": {"range": grid, "rule": {"condition": {"type": "BOOLEAN"}}}},
        {"addConditionalFormatRule": {"rule": {"ranges": [grid], "booleanRule": {}}, "index": 0}},
        {
            "updateSheetProperties": {
                "properties": {"sheetId": 0, "gridProperties": {"frozenRowCount": 1}},
                "fields": "gridProperties.frozenRowCount",
            }
        },
    ]
    answer = requests.post(
        f"{sheets_api.base_url}/v4/spreadsheets/{key}:batchUpdate",
        json={"requests": requests_},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    assert answer["replies"][0]["addSheet"]["properties"]["title"] == "Log"
    assert sheets_api.tabs(key) == ["Orders", "Log"]
    assert len(sheets_api.data_validations(key, "Orders")) == 1
    assert len(sheets_api.conditional_formats(key, "Orders")) == 1
    assert sheets_api.sheet_properties(key, "Orders")["gridProperties"]["frozenRowCount"] == 1

    again = requests.post(
        f"{sheets_api.base_url}/v4/spreadsheets/{key}:batchUpdate",
        json={
            "requests": [
                {"addSheet": {"properties": {"title": "Other"}}},
                {"addSheet": {"properties": {"title": "Log"}}},
            ]
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert again.status_code == 400
    assert sheets_api.tabs(key) == ["Orders", "Log"]  # all or nothing


def test_fake_faults_are_deterministic(sheets_api: FakeSheetsServer) -> None:
    key = sheets_api.create_spreadsheet("T", {"Orders": [["a"]]})
    token = _token(sheets_api)
    sheets_api.fail_next(status=429, count=2, retry_after=7)
    first = _get(sheets_api, f"/v4/spreadsheets/{key}", token)
    second = _get(sheets_api, f"/v4/spreadsheets/{key}", token)
    third = _get(sheets_api, f"/v4/spreadsheets/{key}", token)
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    started = time.monotonic()
    sheets_api.fail_next(status=None, delay=0.1)
    assert _get(sheets_api, f"/v4/spreadsheets/{key}", token).status_code == 200
    assert time.monotonic() - started >= 0.1
