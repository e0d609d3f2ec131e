"""A service the catalog gives nonsense for is refused with the reason, in its rows; the other
services of the catalog are used as usual."""

from __future__ import annotations

from pathlib import Path

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.testing.panel_server import PanelServer, default_catalog
from sheetorders.testing.workbooks import TEST_KEY, read_sheet, write_config
from sheetorders.workbook import build_order_workbook


def test_a_service_with_a_negative_rate_is_refused_and_the_others_are_ordered(tmp_path: Path) -> None:
    catalog = default_catalog()
    for entry in catalog:
        if str(entry["service"]) == "2":
            entry["rate"] = "-1.00"
        if str(entry["service"]) == "3":
            entry["rate"] = None
    with PanelServer(key=TEST_KEY, balance="1000", catalog=catalog) as panel:
        sheet = build_order_workbook(
            tmp_path / "orders.xlsx",
            [
                {"service": 2, "link": "https://instagram.com/neg", "quantity": 5000},
                {"service": 1, "link": "https://instagram.com/ok", "quantity": 100},
            ],
        )
        config = load_config(write_config(tmp_path, panel.url, sheet, max_spend=10))
        report = run_sheets(config)
        negative, fine = read_sheet(sheet)
        assert negative["status"] == "Invalid" and not negative["order_id"]
        assert "left out of the catalog of panel 'main'" in negative["error"] and "rate" in negative["error"]
        assert fine["order_id"] in panel.ledger.orders and len(panel.ledger.orders) == 1
        assert report.sheets[0].invalid == 1
