"""Files shipped with the package: JSON Schemas, sheet templates and the example config.

In a wheel they live in `sheetorders/_data/`; in a source checkout they are the
top-level `schemas/` and `templates/` folders and `config.example.yaml`.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # Python 3.10
    from importlib.abc import Traversable

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Traversable:
    packaged = resources.files("sheetorders").joinpath("_data").joinpath(name)
    if packaged.is_dir():
        return packaged
    return _CHECKOUT_ROOT / name


@cache
def load_schema(relative: str) -> dict[str, Any]:
    """`load_schema("config.schema.json")`, `load_schema("orders/default.schema.json")`."""
    node = data_dir("schemas")
    for part in relative.split("/"):
        node = node.joinpath(part)
    schema: dict[str, Any] = json.loads(node.read_text(encoding="utf-8"))
    return schema


def template_path(name: str) -> Traversable:
    return data_dir("templates").joinpath(name)


CONFIG_EXAMPLE = "config.example.yaml"


def config_example() -> str:
    """The text of config.example.yaml: every key of the config, documented."""
    packaged = resources.files("sheetorders").joinpath("_data").joinpath(CONFIG_EXAMPLE)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_CHECKOUT_ROOT / CONFIG_EXAMPLE).read_text(encoding="utf-8")
