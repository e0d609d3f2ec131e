"""templates/render_pictures.py: the README's pictures of a template and of a sheet after a run
(only where LibreOffice and pdftoppm are installed)."""

from __future__ import annotations

import importlib.util
import shutil
import struct
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "templates" / "render_pictures.py"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_the_pictures_are_rendered_small(tmp_path):
    if not ((shutil.which("soffice") or shutil.which("libreoffice")) and shutil.which("pdftoppm")):
        pytest.skip("LibreOffice or pdftoppm is not installed")
    spec = importlib.util.spec_from_file_location("render_pictures", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = script.build(tmp_path)
    assert [path.name for path in made] == ["template.png", "after-run.png"]
    for path in made:
        width, height = png_size(path)
        assert width == script.WIDTH and 60 < height < width / 3, (path.name, width, height)
        assert path.stat().st_size < 100_000
