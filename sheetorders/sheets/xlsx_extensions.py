"""Excel 2010+ worksheet extensions that openpyxl drops on load, carried across a save.

Excel writes some data validations and conditional formats as extensions of the worksheet
(`<extLst>`): a dropdown whose list is on another tab (a template's service dropdown once Excel
has saved the file), rules that reference another tab, icon sets and data bars of its own. openpyxl
reads none of them and writes none back, so a workbook loaded and saved by openpyxl loses them.
These functions take them from the bytes that were read and put them back into the bytes that
are saved, tab by tab (matched by title, whatever the parts are called). Only these two kinds
are carried: they refer to cells and formulas alone, never to another part of the file that
openpyxl may have dropped; the rows and columns they cover do not move in a pass.
"""

from __future__ import annotations

import io
import posixpath
import warnings
import zipfile
from collections.abc import Callable, Mapping
from typing import IO

from lxml import etree  # type: ignore[import-untyped]  # no stubs in the dependencies

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
DATA_VALIDATIONS = "{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}"
CONDITIONAL_FORMATS = "{78C0D931-6437-407d-A8EE-F0AAD7539E65}"
CARRIED = frozenset({DATA_VALIDATIONS, CONDITIONAL_FORMATS})

Extensions = dict[str, list[bytes]]  # tab title -> its carried <ext> elements, as XML

# openpyxl warns that it removes them on load; they are put back on save.
warnings.filterwarnings(
    "ignore", r"(Data Validation|Conditional Formatting) extension is not supported", UserWarning, "openpyxl"
)


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Tab title -> the path of its worksheet part in the archive."""
    workbook = etree.fromstring(archive.read("xl/workbook.xml"))
    rels = etree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter(f"{{{RELS}}}Relationship")}
    parts: dict[str, str] = {}
    for sheet in workbook.iter(f"{{{MAIN}}}sheet"):
        target = targets.get(sheet.get(f"{{{DOC_RELS}}}id"), "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
        if path in archive.namelist():
            parts[sheet.get("name", "")] = path
    return parts


def extensions_of(data: bytes) -> Extensions:
    """The carried extensions of every tab of the workbook `data` (nothing for a file that is not
    a readable workbook: then there is nothing to carry)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found: Extensions = {}
            for title, path in _sheet_parts(archive).items():
                kept = _carried(archive, path)
                if kept:
                    found[title] = kept
            return found
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError):
        return {}


def _carried(archive: zipfile.ZipFile, path: str) -> list[bytes]:
    """The carried <ext> elements of the worksheet part at `path`. The part is streamed, its rows
    dropped as they are read: a sheet of many rows is never held whole (as a tree it would take
    several times the memory of the whole workbook), and one with no extensions is not parsed."""
    with archive.open(path) as stream:
        if not mentions(stream, b"extLst"):
            return []
    kept: list[bytes] = []
    with archive.open(path) as stream:
        for _event, element in etree.iterparse(stream, tag=(f"{{{MAIN}}}row", f"{{{MAIN}}}extLst")):
            parent = element.getparent()
            if element.tag == f"{{{MAIN}}}row":
                element.clear()
                while element.getprevious() is not None:
                    del parent[0]
            elif parent is not None and parent.getparent() is None:  # the worksheet's own list
                kept += [
                    etree.tostring(ext)
                    for ext in element.iterfind(f"{{{MAIN}}}ext")
                    if ext.get("uri") in CARRIED
                ]
    return kept


def mentions(stream: IO[bytes], word: bytes, chunk: int = 1 << 20) -> bool:
    """Whether `word` occurs in what `stream` holds, read a chunk at a time."""
    tail = b""
    while block := stream.read(chunk):
        if word in tail + block[: len(word)] or word in block:
            return True
        tail = block[-len(word) :]
    return False


def with_extensions(data: bytes, extensions: Mapping[str, list[bytes]]) -> bytes:
    """The workbook `data` with `extensions` put back at the end of their tabs; tabs that are
    gone are skipped, and a tab that already has an extension of the same kind keeps its own."""
    if not extensions:
        return data
    source = zipfile.ZipFile(io.BytesIO(data))
    parts = {path: extensions[title] for title, path in _sheet_parts(source).items() if title in extensions}
    output = io.BytesIO()
    with source, zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename in parts:
                content = _add_extensions(content, parts[item.filename])
            target.writestr(item, content)
    return output.getvalue()


def _add_extensions(sheet_xml: bytes, extensions: list[bytes]) -> bytes:
    root = etree.fromstring(sheet_xml)
    ext_list = root.find(f"{{{MAIN}}}extLst")
    if ext_list is None:
        ext_list = etree.SubElement(root, f"{{{MAIN}}}extLst")  # the last element of a worksheet
    present = {ext.get("uri") for ext in ext_list.iterfind(f"{{{MAIN}}}ext")}
    for xml in extensions:
        ext = etree.fromstring(xml)
        if ext.get("uri") not in present:
            ext_list.append(ext)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


def keeping(
    save: Callable[[IO[bytes]], object], extensions: Mapping[str, list[bytes]]
) -> Callable[[IO[bytes]], None]:
    """`save` (a workbook's, into a file object), with `extensions` put back into what it writes."""

    def save_keeping(handle: IO[bytes]) -> None:
        buffer = io.BytesIO()
        save(buffer)
        handle.write(with_extensions(buffer.getvalue(), extensions))

    return save_keeping
