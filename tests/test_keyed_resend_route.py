"""An Uncertain keyed add is sent again under its key only to the panel it was sent to."""

from __future__ import annotations

import yaml

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.journal import Journal
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, read_sheet
from sheetorders.workbook import build_order_workbook


def _config(folder, sheet, main, second, sheet_panel=None):
    panel = lambda server: {  # noqa: E731
        "url": server.url,
        "key": "${TEST_PANEL_KEY}",
        "concurrency": 1,
        "idempotency_field": "request_id",
    }
    data = {
        "panels": {"main": panel(main), "second": panel(second)},
        "sheet": {
            "source": str(sheet),
            "worksheet": "Orders",
            **({"panel": sheet_panel} if sheet_panel else {}),
        },
        "journal": str(folder / "journal.sqlite"),
    }
    path = folder / "sheetorders.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def test_a_keyed_uncertain_row_is_not_resent_to_another_panel(tmp_path):
    with (
        PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as main,
        PanelServer(key=TEST_KEY, balance="1000", idempotency_field="request_id") as second,
    ):
        sheet = build_order_workbook(
            tmp_path / "orders.xlsx",
            [{"service": 2, "link": "https://instagram.com/p/route", "quantity": 100}],
        )
        config = _config(tmp_path, sheet, main, second)
        main.faults.queue("drop", count=4, actions=["add"])  # every try: made on `main`, reply lost
        assert run_sheets(config).sheets[0].uncertain == 1
        assert len(main.ledger.orders) == 1

        # The sheet is pointed at the other panel (the first one was flaky).
        config = _config(tmp_path, sheet, main, second, sheet_panel="second")
        run_sheets(config)

        row = read_sheet(sheet)[0]
        with Journal(config.journal) as journal:
            entry = journal.get(row["ref"])
        total = len(main.ledger.orders) + len(second.ledger.orders)
        assert total == 1, (
            f"ordered on both panels: main {list(main.ledger.orders)}, second {list(second.ledger.orders)}; "
            f"journal: panel {entry.panel!r} order {entry.order_id}; row {row['order_id']} {row['status']}"
        )
        assert row["status"] == "Uncertain" and "now routed to panel 'second'" in row["error"]
        assert entry.panel == "main" and entry.order_id is None
