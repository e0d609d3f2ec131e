"""`sheetorders history`: every order the journal placed and what it cost, from the journal."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from sheetorders.app import order_history, run_sheets
from sheetorders.cli import cli
from sheetorders.config import load_config
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, write_config
from sheetorders.workbook import build_order_workbook

ENV = {"TEST_PANEL_KEY": TEST_KEY}


def placed(tmp_path: Path, panel: PanelServer) -> Path:
    rows = [
        {"service": 2, "link": "https://instagram.com/h1", "quantity": 100},
        {"service": 2, "link": "https://instagram.com/h2", "quantity": 500},
        {"service": 1, "link": "https://instagram.com/h3", "quantity": 1000},
    ]
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
    path = write_config(tmp_path, panel.url, sheet)
    path.write_text(path.read_text().replace("sheet:\n", "sheet:\n  name: team-a\n"))
    run_sheets(load_config(path))
    return path


def history(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["history", "-c", str(path), *args], env=ENV)
    assert result.exit_code == 0, result.output
    return result.output


def test_history_lists_every_order_with_what_it_cost(tmp_path: Path, panel: PanelServer) -> None:
    path = placed(tmp_path, panel)
    orders = json.loads(history(path, "--json"))
    assert [o["order_id"] for o in orders] and sorted(o["order_id"] for o in orders) == sorted(
        panel.ledger.orders
    )
    first = next(o for o in orders if o["link"] == "https://instagram.com/h2")
    assert first["sheet"] == "team-a" and first["panel"] == "main" and first["service"] == "2"
    assert first["service_name"] == "Instagram Followers | 30 days refill" and first["quantity"] == 500
    assert first["estimate"] == "1.20" and first["currency"] == "USD" and first["status"] == "Pending"

    rows = list(csv.DictReader(io.StringIO(history(path, "--csv"))))
    assert len(rows) == 3
    required = "placed_at sheet panel service service_name link quantity order_id status estimate charge"
    assert {*required.split(), "currency"} <= set(rows[0])
    assert history(path, "--panel", "other", "--json").strip() == "[]"
    assert len(json.loads(history(path, "--sheet", "team-a", "--json"))) == 3


def test_the_summary_sums_to_the_orders_and_reconciles_with_the_panels_charges(
    tmp_path: Path, panel: PanelServer
) -> None:
    path = placed(tmp_path, panel)
    panel.advance(10 * 24 * 3600)  # every order finishes
    run_sheets(load_config(path))  # the charges the panel reports reach the journal
    orders = json.loads(history(path, "--json"))
    charged = {order_id: order.charge for order_id, order in panel.ledger.orders.items()}
    for order in orders:
        assert Decimal(order["charge"]) == charged[order["order_id"]]
        assert order["cost_is_estimate"] is False
    lines = json.loads(history(path, "--summary", "--json"))
    total = lines[-1]
    assert total["group"] == "total" and total["orders"] == 3
    assert Decimal(total["cost"]) == sum(Decimal(o["cost"]) for o in orders) == sum(charged.values())
    assert Decimal(total["of_which_estimated"]) == 0
    by_service = json.loads(history(path, "--summary", "--by", "service", "--json"))
    assert sum(line["orders"] for line in by_service[:-1]) == 3
    assert list(csv.DictReader(io.StringIO(history(path, "--summary", "--csv"))))[-1]["group"] == "total"


def test_since_and_until(tmp_path: Path, panel: PanelServer) -> None:
    path = placed(tmp_path, panel)
    assert len(order_history(load_config(path), since="1d")) == 3
    assert order_history(load_config(path), since="2000-01-01", until="2000-02-01") == []


def test_doctor_checks_the_journal_and_names_what_may_exist(tmp_path: Path, panel: PanelServer) -> None:
    rows = [{"service": 2, "link": f"https://instagram.com/doc{i}", "quantity": 100} for i in range(2)]
    sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
    path = write_config(tmp_path, panel.url, sheet)
    panel.faults.queue("drop", actions=["add"])  # created, its answer lost: Uncertain
    run_sheets(load_config(path))
    result = CliRunner().invoke(cli, ["doctor", "-c", str(path), "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["sound"] is True and found["integrity"] == ["ok"]
    assert found["states"] == {"accepted": 1, "ambiguous": 1}
    assert len(found["unresolved"]) == 1 and "ambiguous" in found["unresolved"][0]

    journal = load_config(path).journal
    for extra in (journal.with_name(journal.name + "-wal"), journal.with_name(journal.name + "-shm")):
        extra.unlink(missing_ok=True)
    journal.write_bytes(b"this is no database" * 200)  # a damaged file
    damaged = CliRunner().invoke(cli, ["doctor", "-c", str(path)], env=ENV)
    assert damaged.exit_code == 2 and "cannot open the journal" in damaged.output
