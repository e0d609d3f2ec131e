"""Shared fixtures: a local panel over HTTP, order sheets on disk, a config pointing at both."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sheetorders.config import Config, load_config
from sheetorders.panel import PanelClient
from sheetorders.testing.clients import SECRET_KEY, Sleeps
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import TEST_KEY, write_config
from sheetorders.workbook import build_order_workbook


@pytest.fixture
def panel() -> Iterator[PanelServer]:
    with PanelServer(key=TEST_KEY, balance="1000") as server:
        yield server


@pytest.fixture(autouse=True)
def _panel_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PANEL_KEY", TEST_KEY)


@pytest.fixture
def sheet_setup(tmp_path: Path, panel: PanelServer):
    """Build a sheet with the given rows and a config for it; returns (config, sheet path)."""

    def setup(rows: Sequence[Mapping[str, Any]], **extra: Any) -> tuple[Config, Path]:
        sheet = build_order_workbook(tmp_path / "orders.xlsx", rows)
        config = load_config(write_config(tmp_path, panel.url, sheet, **extra))
        return config, sheet

    return setup


# --- the panel client's tests: a local panel whose key looks like a secret, a recorded sleep ---


@pytest.fixture
def server() -> Iterator[PanelServer]:
    with PanelServer(key=SECRET_KEY, speed=0) as panel:
        yield panel


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(server: PanelServer, sleeps: Sleeps) -> Iterator[PanelClient]:
    with PanelClient(server.url, SECRET_KEY, name="test", sleep=sleeps) as panel_client:
        yield panel_client
