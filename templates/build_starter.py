"""Rebuild the starter sheets shipped in templates/: orders.xlsx and the header of orders.csv.

orders.xlsx is what `sheetorders template orders.xlsx --all-columns` writes for the local test
panel (sheetorders.testing.panel_server, whose catalog has a service of every type) under the
panel name `main`, as in config.example.yaml: every column, the service dropdown, the estimate
formula, the status colours, and a `note` column as an example of a team's own. Its Services
tab is an example catalog: `sheetorders template` builds the same sheet from your panel's.

    python templates/build_starter.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sheetorders.config import Config, PanelConfig
from sheetorders.template import Layout, layout_from_config
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import PanelServer

HERE = Path(__file__).resolve().parent
KEY = "starter-key"  # the local panel's, no secret
OWN_COLUMNS = ("note",)


def starter_layout(panel_url: str, journal: Path) -> Layout:
    config = Config(
        panels={"main": PanelConfig(name="main", url=panel_url, key=KEY)}, sheets=[], journal=journal
    )
    return layout_from_config(config, all_columns=True, own_columns=OWN_COLUMNS)


def build(folder: Path = HERE) -> Layout:
    with PanelServer(key=KEY) as server, tempfile.TemporaryDirectory() as scratch:
        layout = starter_layout(server.url, Path(scratch) / "journal.sqlite")
    write_template(folder / "orders.xlsx", layout)
    (folder / "orders.csv").write_text(",".join(layout.names) + "\n", encoding="utf-8")
    return layout


if __name__ == "__main__":
    built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote orders.xlsx and orders.csv: {len(built.columns)} columns, {len(built.services)} services")
