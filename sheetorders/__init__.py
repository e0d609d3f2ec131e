"""sheetorders: a spreadsheet in, SMM panel orders out, results written back."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sheetorders")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
