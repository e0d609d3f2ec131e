"""A stop request while an `add` waits to be retried keeps it from leaving."""

from __future__ import annotations

import functools

import pytest

from sheetorders import execute, pipeline
from sheetorders.app import run_sheets
from sheetorders.journal import Journal
from sheetorders.panel import PanelClient, RetryPolicy, Timeouts
from sheetorders.pipeline import PassOptions
from sheetorders.states import EntryState
from sheetorders.stopping import StopRequest
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet
from tests.test_settle import setup


def test_an_add_waiting_out_a_429_does_not_leave_after_a_stop(sheet_setup, panel):
    config, sheet = sheet_setup([{"service": 2, "link": "https://instagram.com/p/stop429", "quantity": 100}])
    stop = StopRequest()

    def factory(p):
        return PanelClient(
            p.url,
            p.key,
            name=p.name,
            concurrency=p.concurrency,
            timeout=Timeouts(connect=p.connect_timeout, read=p.read_timeout),
            retry=RetryPolicy(attempts=p.attempts),
            sleep=lambda seconds: stop.request(),  # Ctrl-C while the client waits out the 429
        )

    panel.faults.queue("429", actions=["add"])
    run_sheets(config, PassOptions(stop=stop), factory=factory)

    # The add answered 429 was not processed: its retry would be the order's first sending.
    assert stop.is_set() and panel.ledger.calls["add"] == 1
    assert len(panel.ledger.orders) == 0
    row = read_sheet(sheet)[0]
    assert row["order_id"] is None and "stopped before sending it" in row["error"]
    with Journal(config.journal) as journal:
        assert journal.get(row["ref"]).state == EntryState.NOT_SENT


@pytest.fixture
def keyed_panel():
    with PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as server:
        yield server


def test_a_keyed_retry_does_not_leave_after_a_stop_during_its_wait(tmp_path, monkeypatch, keyed_panel):
    config, sheet = setup(
        tmp_path,
        keyed_panel,
        [{"service": 2, "link": "https://instagram.com/p/keyed-stop", "quantity": 100}],
        idempotency_field="request_id",
    )
    keyed_panel.faults.queue("drop", actions=["add"])  # try 1: the order is made, the reply lost
    stop = StopRequest()
    # Ctrl-C arrives while the sender waits before the next try under the key.
    monkeypatch.setattr(
        pipeline, "OrderSender", functools.partial(execute.OrderSender, sleep=lambda seconds: stop.request())
    )

    run_sheets(config, PassOptions(stop=stop))

    assert stop.is_set() and keyed_panel.ledger.calls["add"] == 1
    assert read_sheet(sheet)[0]["status"] == "Uncertain"  # its first try may have made it


def test_an_add_waiting_for_its_rate_limit_slot_does_not_leave_after_a_stop(sheet_setup, panel):
    config, sheet = sheet_setup(
        [{"service": 2, "link": f"https://instagram.com/p/rl-{i}", "quantity": 100} for i in range(2)]
    )
    stop = StopRequest()

    def sleep(seconds):  # Ctrl-C while the second add waits for its slot
        if panel.ledger.calls.get("add", 0) >= 1:
            stop.request()

    def factory(p):
        return PanelClient(
            p.url,
            p.key,
            name=p.name,
            concurrency=1,
            rate_limit=0.5,
            timeout=Timeouts(connect=p.connect_timeout, read=p.read_timeout),
            retry=RetryPolicy(attempts=p.attempts),
            sleep=sleep,
        )

    run_sheets(config, PassOptions(stop=stop), factory=factory)
    assert stop.is_set()
    assert len(panel.ledger.orders) == 1, "an add left after the stop"
    assert "stopped before sending it" in read_sheet(sheet)[1]["error"]
