"""Render the README's pictures of an order sheet: templates/pictures/template.png (a template as
`sheetorders template` writes it, with a few rows typed) and after-run.png (the same sheet once
`sheetorders run` and a later `sync` have been through it), against the local test panel.

Needs LibreOffice (`soffice`, e.g. Debian's libreoffice-calc-nogui) and pdftoppm (poppler-utils):
LibreOffice computes the sheet and prints the Orders tab to a PDF page the size of the rows
shown; pdftoppm turns that page into a PNG.

    python templates/render_pictures.py [OUT_FOLDER]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from copy import copy
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.styles import Alignment

from sheetorders.app import run_sheets
from sheetorders.config import Config, PanelConfig, SheetConfig
from sheetorders.models import Service
from sheetorders.panel import make_client
from sheetorders.template import HELP_TAB, ORDERS_TAB, Layout, listed_services, plan_layout, service_entry
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import set_cells

HERE = Path(__file__).resolve().parent
KEY = "pictures-key"  # the local panel's, no secret
SHOWN_SERVICES = ("1", "2", "4", "6")  # drip-feed likes, followers, a package, custom comments
WIDTH = 1200  # pixels of a picture
ADVANCE = 20 * 60  # seconds of the local panel's clock between the run and the sync
LAST_SHOWN = "comments"  # the columns after it are left out of the pictures
PDF_OPTIONS = '{"SinglePageSheets":{"type":"boolean","value":"true"}}'  # a page the size of the tab


def typed_rows(layout: Layout) -> list[dict[str, Any]]:
    """What a person would type: one row per service shown, and one with a mistake."""
    entry = {listed.service.id: service_entry(listed.service) for listed in layout.services}
    return [
        {"service": entry["2"], "link": "https://instagram.com/brand", "quantity": 1000},
        {"service": entry["1"], "link": "https://instagram.com/p/launch", "quantity": 200, "runs": 5,
         "interval": 30},
        {"service": entry["4"], "link": "https://instagram.com/brand"},
        {"service": entry["6"], "link": "https://instagram.com/p/launch",
         "comments": "Love it!\nSo good\nWow\nWhere is this?\nGreat colours"},
        {"service": entry["2"], "link": "instagram brand page", "quantity": 500},
    ]  # fmt: skip


def render(workbook: Path, out: Path, rows: int, scratch: Path) -> Path:
    """The Orders tab's header and first `rows` rows, computed by LibreOffice, as a PNG."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if soffice is None or pdftoppm is None:
        raise SystemExit("render_pictures needs LibreOffice (soffice) and pdftoppm (poppler-utils)")
    book = load_workbook(workbook)
    del book[HELP_TAB]
    orders = book[ORDERS_TAB]
    orders.delete_rows(rows + 2, orders.max_row)  # only what is shown is printed
    headers = [cell.value for cell in orders[1]]
    if LAST_SHOWN in headers:
        orders.delete_cols(headers.index(LAST_SHOWN) + 2, orders.max_column)
    for number in range(2, rows + 2):  # tall enough for what wraps (LibreOffice keeps the heights)
        texts = [c.value for c in orders[number] if isinstance(c.value, str) and not c.value.startswith("=")]
        lines = max([text.count("\n") + 1 for text in texts] + [len(text) // 50 + 1 for text in texts])
        orders.row_dimensions[number].height = 15 * lines
        for cell in orders[number]:
            cell.alignment = _top(cell.alignment)
    shown = scratch / f"{out.stem}.xlsx"
    book.save(shown)
    subprocess.run(
        [soffice, "--headless", f"-env:UserInstallation=file://{scratch}/lo",
         "--convert-to", f"pdf:calc_pdf_Export:{PDF_OPTIONS}", "--outdir", str(scratch), str(shown)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [pdftoppm, "-png", "-singlefile", "-f", "1", "-l", "1", "-scale-to-x", str(WIDTH),
         "-scale-to-y", "-1", str(shown.with_suffix(".pdf")), str(out.with_suffix(""))],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


def _top(alignment: Alignment) -> Alignment:
    moved = copy(alignment)
    moved.vertical, moved.wrap_text = "top", True
    return moved


def build(folder: Path) -> list[Path]:
    with PanelServer(key=KEY) as panel, tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        services = [service for service in _services(panel) if service.id in SHOWN_SERVICES]
        layout = plan_layout(listed_services({"main": services}), "main", rows=20)
        sheet = write_template(scratch / "orders.xlsx", layout)
        rows = typed_rows(layout)
        set_cells(
            sheet,
            {(number, name): value for number, row in enumerate(rows, 2) for name, value in row.items()},
        )
        pictures = [render(sheet, folder / "template.png", len(rows), scratch)]
        config = Config(
            panels={"main": PanelConfig(name="main", url=panel.url, key=KEY)},
            sheets=[SheetConfig(source=str(sheet), worksheet=ORDERS_TAB)],
            journal=scratch / "journal.sqlite",
        )
        run_sheets(config)
        panel.advance(ADVANCE)  # a while later: some orders are done, some on their way
        run_sheets(config)
        pictures.append(render(sheet, folder / "after-run.png", len(rows), scratch))
        return pictures


def _services(panel: PanelServer) -> list[Service]:
    """The local panel's catalog, as the pass reads it."""
    client = make_client(PanelConfig(name="main", url=panel.url, key=KEY))
    try:
        return client.services()
    finally:
        client.close()


if __name__ == "__main__":
    made = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "pictures")
    print("wrote " + ", ".join(str(path) for path in made))
