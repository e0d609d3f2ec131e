"""An add retried under its key within one pass: a refusal of a later try says nothing of
what an earlier, unclear try made (as for an add sent again under its key by a later pass)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sheetorders.app import run_sheets
from sheetorders.journal import Journal
from sheetorders.pipeline import PassOptions
from sheetorders.states import EntryState
from sheetorders.testing.panel_server import ERR_ACTIVE, ERR_FUNDS, PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet
from tests.test_settle import setup


@pytest.fixture
def panel():
    with PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as server:
        yield server


def one_row(tmp_path, panel, tag):
    """A sheet of one row on a panel that takes `request_id` as the add's idempotency key."""
    row = {"service": 2, "link": f"https://instagram.com/p/{tag}", "quantity": 100}
    return setup(tmp_path, panel, [row], idempotency_field="request_id")


@pytest.mark.parametrize("refusal", [ERR_ACTIVE, ERR_FUNDS, "Incorrect request"])
def test_a_refused_second_try_leaves_uncertain_an_add_whose_first_try_made_an_order(tmp_path, panel, refusal):
    config, sheet = one_row(tmp_path, panel, "keyed-0")
    panel.faults.queue("drop", actions=["add"])  # try 1: the panel makes the order, the reply is lost
    panel.faults.queue_reply({"error": refusal}, actions=["add"])  # try 2: a refusal

    run_sheets(config)

    assert len(panel.ledger.orders) == 1  # the first try's order exists, paid for
    row = read_sheet(sheet)[0]
    with Journal(config.journal) as journal:
        state = journal.get(row["ref"]).state
    # The order may exist: the row must stay Uncertain and the entry unresolved.
    assert (row["status"], state) == ("Uncertain", EntryState.AMBIGUOUS), row["error"]


def test_an_uncertain_keyed_row_not_sent_again_in_a_pass_stays_uncertain(tmp_path, panel):
    config, sheet = one_row(tmp_path, panel, "keyed-held")
    panel.faults.queue("drop", count=4, actions=["add"])  # every try: made, the reply lost
    run_sheets(config)
    assert read_sheet(sheet)[0]["status"] == "Uncertain"
    adds = panel.ledger.calls["add"]

    run_sheets(config, PassOptions(max_spend=Decimal("0.01")))  # too little to send it again

    row = read_sheet(sheet)[0]
    assert panel.ledger.calls["add"] == adds
    assert row["status"] == "Uncertain" and "the panel may have created this order" in row["error"]
    run_sheets(config)  # sent again under its key: the panel answers with the order it made
    assert read_sheet(sheet)[0]["order_id"] == next(iter(panel.ledger.orders))
    assert len(panel.ledger.orders) == 1
