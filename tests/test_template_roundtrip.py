"""A template's workbook through `run` and `sync`: what the template put there is still there
(dropdowns and other validations, status colours, frozen header, column groups), also once Excel
has moved the service dropdown, which lists another tab, into an Excel 2010+ extension."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from openpyxl import load_workbook

from sheetorders.app import run_sheets
from sheetorders.config import Config, load_config
from sheetorders.errors import ExitCode
from sheetorders.sheets.xlsx_extensions import DATA_VALIDATIONS, MAIN
from sheetorders.template import layout_from_config, service_entry
from sheetorders.template_xlsx import write_template
from sheetorders.testing.panel_server import PanelServer
from sheetorders.testing.workbooks import read_sheet, set_cells, write_config

X14 = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XM = "http://schemas.microsoft.com/office/excel/2006/main"
ORDERS_PART = "xl/worksheets/sheet1.xml"  # the first tab, as openpyxl and Excel name it


@pytest.fixture
def config(tmp_path: Path, panel: PanelServer) -> Config:
    config = load_config(write_config(tmp_path, panel.url, tmp_path / "orders.xlsx"))
    write_template(tmp_path / "orders.xlsx", layout_from_config(config, rows=30))
    return config


def what_the_template_owns(path: Path) -> dict[str, Any]:
    """The Orders tab's validations, colours, frozen panes and columns, as openpyxl reads them."""
    sheet = load_workbook(path)["Orders"]
    validations = sorted(
        (str(v.sqref), v.type, v.formula1, v.formula2, v.operator, v.prompt, v.error, v.showErrorMessage)
        for v in sheet.data_validations.dataValidation
    )
    colours = sorted(
        (str(range_.sqref), rule.formula[0], rule.dxf.fill.start_color.rgb, rule.dxf.font.color.rgb)
        for range_ in sheet.conditional_formatting
        for rule in range_.rules
    )
    columns = {
        letter: (d.width, d.outline_level, d.hidden, d.collapsed)
        for letter, d in sheet.column_dimensions.items()
    }
    headers = [(cell.value, cell.fill.start_color.rgb, cell.font.b) for cell in sheet[1]]
    return {
        "validations": validations,
        "colours": colours,
        "freeze": sheet.freeze_panes,
        "columns": columns,
        "headers": headers,
    }


def two_orders(config: Config, panel: PanelServer) -> None:
    sheet = Path(config.sheets[0].source)
    likes = next(s for s in layout_from_config(config).services if s.service.id == "2").service
    set_cells(
        sheet,
        {
            (2, "service"): service_entry(likes),
            (2, "link"): "https://instagram.com/p/one",
            (2, "quantity"): 500,
            (3, "service"): 2,
            (3, "link"): "https://instagram.com/p/two",
            (3, "quantity"): 700,
            (3, "action"): None,
        },
    )


def run_then_sync(config: Config, panel: PanelServer) -> None:
    placed = run_sheets(config)
    assert placed.exit_code == ExitCode.OK and placed.sheets[0].ordered == 2, placed.as_dict()
    panel.advance(3600)  # the orders move on: the sync writes their statuses
    synced = run_sheets(config)
    assert synced.exit_code == ExitCode.OK and synced.sheets[0].refreshed == 2, synced.as_dict()
    assert all(row["order_id"] for row in read_sheet(Path(config.sheets[0].source))[:2])


def test_run_and_sync_keep_what_the_template_put_in_the_orders_tab(config, panel):
    path = Path(config.sheets[0].source)
    two_orders(config, panel)
    before = what_the_template_owns(path)
    assert any(v[0] == "A2:A31" and str(v[2]).startswith("'Services'!") for v in before["validations"])
    run_then_sync(config, panel)
    after = what_the_template_owns(path)
    for part in before:
        assert after[part] == before[part], part


# --- as Excel saves it ------------------------------------------------------------------------


def as_excel_saves_it(path: Path) -> None:
    """Move the Orders tab's dropdowns that list another tab into the x14 extension, as Excel
    2010+ writes them (openpyxl reads none of it)."""
    with zipfile.ZipFile(path) as archive:
        parts = {item.filename: archive.read(item) for item in archive.infolist()}
    root = etree.fromstring(parts[ORDERS_PART])
    standard = root.find(f"{{{MAIN}}}dataValidations")
    moved = [v for v in standard if "!" in (v.findtext(f"{{{MAIN}}}formula1") or "")]
    assert moved
    ext_list = etree.SubElement(root, f"{{{MAIN}}}extLst")
    ext = etree.SubElement(ext_list, f"{{{MAIN}}}ext", uri=DATA_VALIDATIONS, nsmap={"x14": X14})
    x14 = etree.SubElement(ext, f"{{{X14}}}dataValidations", count=str(len(moved)), nsmap={"xm": XM})
    for validation in moved:
        standard.remove(validation)
        copy = etree.SubElement(x14, f"{{{X14}}}dataValidation", dict(validation.attrib))
        del copy.attrib["sqref"]
        formula = etree.SubElement(copy, f"{{{X14}}}formula1")
        etree.SubElement(formula, f"{{{XM}}}f").text = validation.findtext(f"{{{MAIN}}}formula1")
        etree.SubElement(copy, f"{{{XM}}}sqref").text = validation.get("sqref")
    standard.set("count", str(len(standard)))
    parts[ORDERS_PART] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def extension_dropdowns(path: Path) -> list[tuple[str, str]]:
    """(cells, list source) of the x14 dropdowns of the Orders tab, whatever its part's name."""
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        root = etree.fromstring(archive.read(ORDERS_PART))
    return [
        (v.findtext(f"{{{XM}}}sqref"), v.findtext(f"{{{X14}}}formula1/{{{XM}}}f"))
        for v in root.iter(f"{{{X14}}}dataValidation")
    ]


def test_a_dropdown_excel_keeps_as_an_extension_survives_run_and_sync(config, panel):
    path = Path(config.sheets[0].source)
    two_orders(config, panel)
    as_excel_saves_it(path)
    dropdowns = extension_dropdowns(path)
    assert dropdowns == [("A2:A31", "'Services'!$P$2:$P$21")]
    run_then_sync(config, panel)
    assert extension_dropdowns(path) == dropdowns
    workbook = load_workbook(path)  # and the file is still a workbook openpyxl (and Excel) reads
    assert workbook.sheetnames == ["Orders", "Services", "Help"]
    assert not [v for v in workbook["Orders"].data_validations.dataValidation if str(v.sqref) == "A2:A31"]
