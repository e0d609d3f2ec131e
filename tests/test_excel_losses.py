"""A workbook holding what a save through openpyxl would delete (a shape, a text box,
sparklines) is refused before anything is sent or saved; what openpyxl keeps (a chart, a
picture) is not."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.image import Image
from openpyxl.worksheet.worksheet import Worksheet
from PIL import Image as PILImage

from sheetorders.app import run_sheets
from sheetorders.config import load_config
from sheetorders.errors import ExitCode
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, write_config
from sheetorders.workbook import build_order_workbook

ROWS = [{"service": 2, "link": "https://instagram.com/p/drawn", "quantity": 100}]

SHAPE = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
          xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">
  <xdr:twoCellAnchor>
    <xdr:from><xdr:col>30</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>1</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>
    <xdr:to><xdr:col>33</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>4</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>
    <xdr:sp macro="" textlink="">
      <xdr:nvSpPr><xdr:cNvPr id="2" name="TextBox 1"/><xdr:cNvSpPr txBox="1"/></xdr:nvSpPr>
      <xdr:spPr><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr>
      <xdr:txBody><a:bodyPr/><a:p><a:r><a:t>Ask Ana before ordering</a:t></a:r></a:p></xdr:txBody>
    </xdr:sp>
    <xdr:clientData/>
  </xdr:twoCellAnchor>
</xdr:wsDr>"""

SPARKLINES = (
    b'<extLst><ext uri="{05C60535-1F16-4fd2-B633-F4F36F0B64E0}" '
    b'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
    b'<x14:sparklineGroups xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
    b"<x14:sparklineGroup><x14:sparklines><x14:sparkline><xm:f>Orders!D2:D2</xm:f><xm:sqref>AE2</xm:sqref>"
    b"</x14:sparkline></x14:sparklines></x14:sparklineGroup></x14:sparklineGroups></ext></extLst>"
)


def _rewrite(path: Path, change: dict[str, bytes], edit_sheet: bytes | None = None) -> None:
    """The workbook with parts added (or replaced), and the first sheet's XML extended, as Excel
    would have saved it."""
    with zipfile.ZipFile(path) as source:
        parts = {item.filename: source.read(item) for item in source.infolist()}
    parts.update(change)
    if edit_sheet is not None:
        sheet = parts["xl/worksheets/sheet1.xml"]
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(b"</worksheet>", edit_sheet + b"</worksheet>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


def _with_text_box(path: Path) -> None:
    rel = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    types = (
        zipfile.ZipFile(path)
        .read("[Content_Types].xml")
        .replace(
            b"</Types>",
            b'<Override PartName="/xl/drawings/drawing1.xml" '
            b'ContentType="application/vnd.openxmlformats-officedocument.drawing+xml"/></Types>',
        )
    )
    rels = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rIdDrawing1" Type="' + rel + b'/drawing" Target="../drawings/drawing1.xml"/>'
        b"</Relationships>"
    )
    _rewrite(
        path,
        {
            "[Content_Types].xml": types,
            "xl/drawings/drawing1.xml": SHAPE,
            "xl/worksheets/_rels/sheet1.xml.rels": rels,
        },
        edit_sheet=b'<drawing xmlns:r="' + rel + b'" r:id="rIdDrawing1"/>',
    )


def test_a_workbook_with_a_text_box_is_refused_before_anything_is_placed(tmp_path: Path, panel: PanelServer):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", ROWS)
    _with_text_box(sheet)
    assert load_workbook(sheet)["Orders"].max_row >= 2  # a workbook openpyxl reads
    before = sheet.read_bytes()
    config = load_config(write_config(tmp_path, panel.url, sheet))

    report = run_sheets(config)

    assert len(panel.ledger.orders) == 0 and report.exit_code != ExitCode.OK
    message = str(report.as_dict())
    assert "holds what saving it here would delete (1 shapes, text boxes or groups)" in message
    assert "nothing was written" in message
    assert sheet.read_bytes() == before  # the text box is still there


def test_a_workbook_with_sparklines_is_refused_before_anything_is_placed(tmp_path: Path, panel: PanelServer):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", ROWS)
    _rewrite(sheet, {}, edit_sheet=SPARKLINES)
    config = load_config(write_config(tmp_path, panel.url, sheet))

    report = run_sheets(config)

    assert len(panel.ledger.orders) == 0
    assert "holds what saving it here would delete (sparklines)" in str(report.as_dict())


def _chart(tmp_path: Path, sheet: Worksheet) -> None:
    chart = BarChart()
    chart.add_data(Reference(sheet, min_col=4, min_row=1, max_row=2), titles_from_data=True)
    sheet.add_chart(chart, "AE2")


def _picture(tmp_path: Path, sheet: Worksheet) -> None:
    logo = tmp_path / "logo.png"
    PILImage.new("RGB", (40, 20), "red").save(logo)
    sheet.add_image(Image(str(logo)), "AE2")


@pytest.mark.parametrize(("add", "part"), [(_chart, "xl/charts/chart"), (_picture, "xl/media/")])
def test_a_workbook_with_a_chart_or_a_picture_is_placed_and_keeps_it(
    tmp_path: Path, panel: PanelServer, add, part
):
    sheet = build_order_workbook(tmp_path / "orders.xlsx", ROWS)
    workbook = load_workbook(sheet)
    add(tmp_path, workbook["Orders"])
    workbook.save(sheet)
    config = load_config(write_config(tmp_path, panel.url, sheet))

    report = run_sheets(config)

    assert report.exit_code == ExitCode.OK and read_sheet(sheet)[0]["order_id"]
    with zipfile.ZipFile(sheet) as saved:
        assert any(name.startswith(part) for name in saved.namelist())
