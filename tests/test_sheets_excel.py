from __future__ import annotations

import os
import zipfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.datavalidation import DataValidation

from sheetorders.errors import SheetError, SheetLocked, SheetNotWritable
from sheetorders.sheets import CellWrite, open_backend
from sheetorders.sheets.csvfile import CsvBackend
from sheetorders.sheets.excel import ExcelBackend

HEADERS = ["panel", "service", "link", "quantity", "total"]
RED = "FFFF0000"


def make_workbook(path: Path) -> Path:
    """An order sheet with the kinds of formatting a user adds, plus a second tab."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(HEADERS)
    ws.append(["main", 101, "https://example.com/a", 1000, "=D2*2"])
    ws.append(["main", 102, "https://example.com/b", 250, "=D3*2"])
    for cell in ws[1]:
        cell.font = Font(name="Arial", bold=True, size=12)
    ws["C2"].fill = PatternFill("solid", fgColor=RED)
    ws["C2"].font = Font(italic=True, color=RED)
    ws["D2"].number_format = "#,##0.00"
    ws.column_dimensions["C"].width = 42
    ws.freeze_panes = "A2"
    validation = DataValidation(type="list", formula1='"main,backup"', allow_blank=True)
    validation.add("A2:A100")
    ws.add_data_validation(validation)
    ws.conditional_formatting.add(
        "D2:D100", CellIsRule(operator="greaterThan", formula=["500"], fill=PatternFill("solid", bgColor=RED))
    )
    ws.merge_cells("G1:H1")
    notes = wb.create_sheet("Notes")
    notes["A1"] = "keep me"
    notes["B2"] = "=Orders!D2+1"
    wb.save(path)
    return path


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return make_workbook(tmp_path / "orders.xlsx")


def write(path: Path, cells: list[CellWrite], worksheet: str | None = None) -> ExcelBackend:
    backend = ExcelBackend(str(path), worksheet)
    backend.read()
    backend.write(cells)
    return backend


def sheet_xml(path: Path, index: int = 1) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(f"xl/worksheets/sheet{index}.xml").decode()


# --- choosing the backend ---------------------------------------------------


@pytest.mark.parametrize(
    ("source", "accepted"),
    [
        ("orders.xlsx", True),
        ("C:\\Teams\\ORDERS.XLSX", True),
        ("macros.xlsm", True),
        ("orders.csv", False),
        ("orders.xls", False),
        ("https://example.com/orders.xlsx", False),
    ],
)
def test_accepts(source: str, accepted: bool) -> None:
    assert ExcelBackend.accepts(source) is accepted


def test_open_backend_picks_by_extension(tmp_path: Path) -> None:
    assert isinstance(open_backend(str(tmp_path / "x.xlsx")), ExcelBackend)
    assert isinstance(open_backend(str(tmp_path / "x.csv")), CsvBackend)
    with pytest.raises(SheetError, match="no sheet backend"):
        open_backend(str(tmp_path / "x.ods"))


# --- reading ----------------------------------------------------------------


def test_read_headers_values_and_formulas_as_text(book: Path) -> None:
    table = ExcelBackend(str(book)).read()
    assert table.headers == HEADERS
    assert table.rows == [
        ["main", 101, "https://example.com/a", 1000, "=D2*2"],
        ["main", 102, "https://example.com/b", 250, "=D3*2"],
    ]
    assert table.cell(3, 5) == "=D3*2"


def test_read_drops_trailing_empty_rows_and_cells(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["a", "b", "c"])
    ws.append(["1", None, None])
    ws.append([None, None, None])
    ws["B5"].fill = PatternFill("solid", fgColor=RED)  # formatted but empty
    ws["XFD20000"].font = Font(bold=True)  # a stray formatted cell far away must not matter
    wb.save(tmp_path / "t.xlsx")
    table = ExcelBackend(str(tmp_path / "t.xlsx")).read()
    assert table.headers == ["a", "b", "c"]
    assert table.rows == [["1"]]


def test_read_keeps_types_and_gaps(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["when", "n", "x", "flag"])
    ws.append([datetime(2024, 5, 1, 12, 30), 2.5, None, True])
    ws.append([])
    ws.append(["after a blank row"])
    wb.save(tmp_path / "t.xlsx")
    table = ExcelBackend(str(tmp_path / "t.xlsx")).read()
    assert table.rows == [[datetime(2024, 5, 1, 12, 30), 2.5, None, True], [], ["after a blank row"]]


def test_read_empty_sheet(tmp_path: Path) -> None:
    Workbook().save(tmp_path / "empty.xlsx")
    table = ExcelBackend(str(tmp_path / "empty.xlsx")).read()
    assert table.headers == [] and table.rows == []


def test_worksheet_by_name_default_first_and_case_insensitive(book: Path) -> None:
    assert ExcelBackend(str(book), "Notes").read().headers == ["keep me"]
    assert ExcelBackend(str(book), "notes").read().headers == ["keep me"]
    wb = load_workbook(book)
    wb.active = 1  # the Notes tab was active when saved: the default is still the first tab
    wb.save(book)
    assert ExcelBackend(str(book)).read().headers == HEADERS


def test_missing_tab_lists_the_tabs(book: Path) -> None:
    with pytest.raises(SheetError, match=r"no tab 'Sheet9'.*'Orders', 'Notes'"):
        ExcelBackend(str(book), "Sheet9").read()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"nope\.xlsx not found"):
        ExcelBackend(str(tmp_path / "nope.xlsx")).read()


@pytest.mark.parametrize("content", [b"not a zip at all", b""])
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(content)
    with pytest.raises(SheetError, match="not a valid Excel workbook"):
        ExcelBackend(str(path)).read()


def test_old_xls_or_encrypted_file_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "renamed.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    with pytest.raises(SheetError, match=r"old \.xls file or a password-protected workbook"):
        ExcelBackend(str(path)).read()


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "other.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(SheetError, match="not a valid Excel workbook"):
        ExcelBackend(str(path)).read()


# --- Excel's lock file ------------------------------------------------------


def test_lock_file_refuses_read(book: Path) -> None:
    (book.parent / "~$orders.xlsx").write_bytes(b"someone")
    with pytest.raises(SheetLocked, match=r"orders.xlsx is open in Excel \(lock file ~\$orders.xlsx\)"):
        ExcelBackend(str(book)).read()


def test_lock_file_refuses_write_and_leaves_the_file_alone(book: Path) -> None:
    before = book.read_bytes()
    backend = ExcelBackend(str(book))
    backend.read()
    (book.parent / "~$orders.xlsx").write_bytes(b"someone")
    with pytest.raises(SheetLocked, match="close it and run again"):
        backend.write([CellWrite(2, 1, "changed")])
    assert book.read_bytes() == before


def test_libreoffice_lock_file_refused(book: Path) -> None:
    (book.parent / ".~lock.orders.xlsx#").write_text("someone")
    with pytest.raises(SheetLocked, match="LibreOffice"):
        ExcelBackend(str(book)).read()


# --- writing ----------------------------------------------------------------


def test_write_values_of_each_type(book: Path) -> None:
    aware = datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    write(
        book,
        [
            CellWrite(2, 6, 12345),
            CellWrite(2, 7, Decimal("1.2345")),
            CellWrite(2, 8, datetime(2024, 5, 1, 12, 30)),
            CellWrite(2, 9, aware),
            CellWrite(2, 10, "Pending"),
            CellWrite(2, 11, True),
            CellWrite(2, 12, 2.5),
            CellWrite(3, 12, "bad\x00 \x1bchars\tkept tab"),
        ],
    )
    ws = load_workbook(book)["Orders"]
    assert ws["F2"].value == 12345 and ws["F2"].data_type == "n"
    assert ws["G2"].value == pytest.approx(1.2345) and ws["G2"].data_type == "n"
    assert ws["H2"].value == datetime(2024, 5, 1, 12, 30)
    assert ws["I2"].value == aware.astimezone().replace(tzinfo=None)
    assert ws["J2"].value == "Pending"
    assert ws["K2"].value is True
    assert ws["L2"].value == 2.5
    assert ws["L3"].value == "bad chars\tkept tab"


def test_formula_looking_strings_are_stored_as_text(book: Path) -> None:
    write(
        book,
        [
            CellWrite(2, 6, '=HYPERLINK("http://evil")'),
            CellWrite(3, 6, "#N/A"),
            CellWrite(2, 5, "=1+1"),  # over a cell that held a formula
        ],
    )
    ws = load_workbook(book)["Orders"]
    assert ws["F2"].value == '=HYPERLINK("http://evil")' and ws["F2"].data_type == "s"
    assert ws["F3"].value == "#N/A" and ws["F3"].data_type == "s"
    assert ws["E2"].value == "=1+1" and ws["E2"].data_type == "s"
    assert ws["E3"].data_type == "f"  # the user's untouched formula is still one
    xml = sheet_xml(book)
    assert "<f>HYPERLINK" not in xml and "<f>1+1</f>" not in xml
    assert '<c r="E2" t="inlineStr"><is><t>=1+1</t></is></c>' in xml
    assert "<f>D3*2</f>" in xml


def test_none_clears_the_value_but_keeps_the_style(book: Path) -> None:
    write(book, [CellWrite(2, 3, None)])
    ws = load_workbook(book)["Orders"]
    assert ws["C2"].value is None
    assert ws["C2"].fill.fgColor.rgb == RED
    assert ws["C2"].font.italic


def test_formatting_survives_a_round_trip(book: Path) -> None:
    write(book, [CellWrite(2, 4, 2000), CellWrite(3, 3, "https://example.com/c")])
    wb = load_workbook(book)
    ws = wb["Orders"]
    # fonts and fills
    assert ws["A1"].font.name == "Arial" and ws["A1"].font.bold and ws["A1"].font.size == 12
    assert ws["C2"].fill.fill_type == "solid" and ws["C2"].fill.fgColor.rgb == RED
    assert ws["C2"].font.italic and ws["C2"].font.color.rgb == RED
    # number format kept on a cell whose value was replaced
    assert ws["D2"].value == 2000 and ws["D2"].number_format == "#,##0.00"
    # widths, freeze panes, merged cells
    assert ws.column_dimensions["C"].width == 42
    assert ws.freeze_panes == "A2"
    assert "G1:H1" in {str(r) for r in ws.merged_cells.ranges}
    # data validation
    (validation,) = ws.data_validations.dataValidation
    assert validation.type == "list" and validation.formula1 == '"main,backup"'
    assert str(validation.sqref) == "A2:A100"
    # conditional formatting
    ranges = {str(cf.sqref): cf.rules for cf in ws.conditional_formatting}
    (rule,) = ranges["D2:D100"]
    assert rule.operator == "greaterThan" and rule.formula == ["500"]
    # the user's formulas and the other worksheet
    assert ws["E2"].value == "=D2*2" and ws["E3"].value == "=D3*2"
    assert wb.sheetnames == ["Orders", "Notes"]
    assert wb["Notes"]["A1"].value == "keep me" and wb["Notes"]["B2"].value == "=Orders!D2+1"


def test_new_header_columns_get_the_header_font(book: Path) -> None:
    write(book, [CellWrite(1, 6, "order_id"), CellWrite(1, 7, "status"), CellWrite(2, 6, 555)])
    ws = load_workbook(book)["Orders"]
    assert [c.value for c in ws[1]][:7] == [*HEADERS, "order_id", "status"]
    assert ws["F1"].font.name == "Arial" and ws["F1"].font.bold
    assert not ws["F2"].font.bold
    assert ExcelBackend(str(book)).read().headers == [*HEADERS, "order_id", "status"]


def test_write_keeps_permissions_and_a_second_write_works(book: Path) -> None:
    os.chmod(book, 0o640)
    backend = write(book, [CellWrite(2, 6, "first")])
    assert (book.stat().st_mode & 0o777) == 0o640
    assert not backend.changed_since_read()
    backend.write([CellWrite(3, 6, "second")])
    assert (book.stat().st_mode & 0o777) == 0o640
    ws = load_workbook(book)["Orders"]
    assert (ws["F2"].value, ws["F3"].value) == ("first", "second")
    assert sorted(p.name for p in book.parent.iterdir()) == ["orders.xlsx"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("boom")])
def test_failed_save_leaves_the_original_intact(
    book: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    before = book.read_bytes()
    backend = ExcelBackend(str(book))
    backend.read()

    def broken_save(self: Workbook, filename: object) -> None:
        filename.write(b"PK half a zip")  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(Workbook, "save", broken_save)
    with pytest.raises(SheetError if isinstance(error, OSError) else RuntimeError):
        backend.write([CellWrite(2, 1, "changed")])
    assert book.read_bytes() == before
    assert sorted(p.name for p in book.parent.iterdir()) == ["orders.xlsx"]
    assert backend.changed_since_read()  # the unsaved cells in memory must not be saved blindly later


def test_failed_rename_leaves_the_original_intact(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = book.read_bytes()
    backend = ExcelBackend(str(book))
    backend.read()

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SheetError, match=r"cannot save .*Permission denied"):
        backend.write([CellWrite(2, 1, "changed")])
    assert book.read_bytes() == before
    assert sorted(p.name for p in book.parent.iterdir()) == ["orders.xlsx"]


def test_changed_since_read_and_write_refused_after_a_change(book: Path) -> None:
    backend = ExcelBackend(str(book))
    backend.read()
    assert not backend.changed_since_read()
    st = book.stat()
    os.utime(book, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert backend.changed_since_read()
    changed = book.read_bytes()
    with pytest.raises(SheetError, match="changed since it was read"):
        backend.write([CellWrite(2, 1, "changed")])
    assert book.read_bytes() == changed
    backend.read()
    assert not backend.changed_since_read()
    backend.write([CellWrite(2, 1, "changed")])
    assert load_workbook(book)["Orders"]["A2"].value == "changed"


def test_changed_since_read_when_deleted(book: Path) -> None:
    backend = ExcelBackend(str(book))
    backend.read()
    book.unlink()
    assert backend.changed_since_read()


def test_write_to_a_named_tab_leaves_the_first_tab_alone(book: Path) -> None:
    write(book, [CellWrite(3, 1, "note")], worksheet="Notes")
    wb = load_workbook(book)
    assert wb["Notes"]["A3"].value == "note"
    assert wb["Orders"]["A3"].value == "main"


def test_xlsm_keeps_its_macros(tmp_path: Path) -> None:
    plain, path = tmp_path / "plain.xlsx", tmp_path / "macros.XLSM"
    wb = Workbook()
    wb.active.append(["panel"])
    wb.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("xl/vbaProject.bin", b"fake macros")
    plain.unlink()
    write(path, [CellWrite(2, 1, "main")])
    assert ExcelBackend(str(path)).read().rows == [["main"]]
    with zipfile.ZipFile(path) as archive:
        assert archive.read("xl/vbaProject.bin") == b"fake macros"


def test_rich_text_reads_as_plain_text_and_survives(tmp_path: Path) -> None:
    path = tmp_path / "rich.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(["panel", "note"])
    ws["B2"] = CellRichText("plain ", TextBlock(InlineFont(b=True), "bold"))
    wb.save(path)
    backend = ExcelBackend(str(path))
    assert backend.read().rows == [[None, "plain bold"]]
    backend.write([CellWrite(2, 1, "main")])
    value = load_workbook(path, rich_text=True).active["B2"].value
    assert isinstance(value, CellRichText) and value[1].font.b


# --- checked before anything is ordered ---------------------------------------


def test_check_writable_names_merged_cells_where_results_go(book: Path) -> None:
    wb = load_workbook(book)
    wb["Orders"].merge_cells("F5:G6")
    wb.save(book)
    backend = ExcelBackend(str(book))
    backend.read()
    before = book.read_bytes()
    # G1 is the first cell of G1:H1 and F5 of F5:G6: they hold the merged value and may be written.
    backend.check_writable([(1, 6), (1, 7), (2, 6), (5, 6)])
    with pytest.raises(SheetNotWritable) as raised:
        backend.check_writable([(1, 6), (1, 7), (1, 8), (2, 7), (5, 7), (6, 6)])
    assert str(raised.value) == (
        f"{book}: cells H1, G5, F6 are merged (F5:G6, G1:H1), and results go there: "
        "unmerge them or move the output columns"
    )
    assert book.read_bytes() == before


def test_write_refuses_merged_cells_before_changing_anything(book: Path) -> None:
    before = book.read_bytes()
    backend = ExcelBackend(str(book))
    backend.read()
    with pytest.raises(SheetNotWritable, match=r"cell H1 is merged \(G1:H1\)"):
        backend.write([CellWrite(2, 6, "555"), CellWrite(1, 8, "status")])
    assert book.read_bytes() == before
    assert not backend.changed_since_read()
    backend.write([CellWrite(2, 6, 555)])  # the refused write left nothing behind in memory either
    ws = load_workbook(book)["Orders"]
    assert (ws["F2"].value, ws["H1"].value) == (555, None)


def test_check_writable_refuses_columns_past_xfd(book: Path) -> None:
    backend = ExcelBackend(str(book))
    backend.read()
    backend.check_writable([(1, 16_384)])
    with pytest.raises(SheetNotWritable, match=r"cells XFE1, XFE2 are past Excel's last column XFD"):
        backend.check_writable([(1, 16_385), (2, 16_385), (2, 16_384)])


def test_used_width_counts_unlabeled_cells_and_merged_ranges(tmp_path: Path) -> None:
    path = tmp_path / "notes.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(["service", "link", "quantity"])
    ws.append([1, "https://a", 100])
    ws.append([1, "https://b", 100, "call Bob", "urgent"])  # notes in D and E, no header
    ws["H9"].font = Font(bold=True)  # formatting alone is not data
    wb.save(path)
    table = ExcelBackend(str(path)).read()
    assert (len(table.headers), table.used_width) == (3, 5)
    assert ExcelBackend(str(make_workbook(tmp_path / "merged.xlsx"))).read().used_width == 8  # G1:H1


def test_the_worksheet_s_own_extensions_are_found_after_many_rows_and_no_others(tmp_path):
    """The extensions are read from the streamed worksheet part: those of the worksheet itself,
    after its rows, and not the one a conditional format carries inside it, nor a cell's text."""
    from lxml import etree

    from sheetorders.sheets.xlsx_extensions import CONDITIONAL_FORMATS, DATA_VALIDATIONS, MAIN, extensions_of

    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(["link", "note"])
    for number in range(3000):
        ws.append([f"https://example.com/{number}", "extLst"])
    path = tmp_path / "many.xlsx"
    wb.save(path)
    with zipfile.ZipFile(path) as archive:
        parts = {item.filename: archive.read(item) for item in archive.infolist()}
    root = etree.fromstring(parts["xl/worksheets/sheet1.xml"])
    formatting = etree.SubElement(root, f"{{{MAIN}}}conditionalFormatting", sqref="A2")
    rule = etree.SubElement(formatting, f"{{{MAIN}}}cfRule", type="expression", priority="1")
    etree.SubElement(etree.SubElement(rule, f"{{{MAIN}}}extLst"), f"{{{MAIN}}}ext", uri=CONDITIONAL_FORMATS)
    ext_list = etree.SubElement(root, f"{{{MAIN}}}extLst")
    etree.SubElement(ext_list, f"{{{MAIN}}}ext", uri=DATA_VALIDATIONS)
    etree.SubElement(ext_list, f"{{{MAIN}}}ext", uri="{00000000-0000-0000-0000-000000000000}")
    parts["xl/worksheets/sheet1.xml"] = etree.tostring(root)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)

    found = extensions_of(path.read_bytes())

    assert list(found) == ["Orders"]
    assert [etree.fromstring(xml).get("uri") for xml in found["Orders"]] == [DATA_VALIDATIONS]
