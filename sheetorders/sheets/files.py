"""File helpers shared by the backends that edit a local file in place (Excel, CSV)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from sheetorders.errors import SheetError, SheetLocked
from sheetorders.sheets.base import SheetBackend

FileStamp = tuple[int, int]


def is_url(source: str) -> bool:
    return "://" in source


def file_stamp(path: Path) -> FileStamp | None:
    """(mtime_ns, size) of `path`, or None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def check_not_locked(path: Path) -> None:
    """Raise SheetLocked when Excel or LibreOffice has `path` open (they leave a lock file beside it)."""
    excel_lock = path.with_name(f"~${path.name}")
    if excel_lock.exists():
        raise SheetLocked(
            f"{path} is open in Excel (lock file {excel_lock.name}): close it and run again "
            "(if nobody has it open, the lock file was left by a crash: delete it)"
        )
    office_lock = path.with_name(f".~lock.{path.name}#")
    if office_lock.exists():
        raise SheetLocked(
            f"{path} is open in LibreOffice (lock file {office_lock.name}): close it and run again"
        )


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Replace `path` with what `write` puts into a binary file, all or nothing.

    The new content goes to a temporary file in the same folder (so the final
    rename stays on one file system), is flushed to disk, gets the original's
    permission bits, and then replaces the original. On any failure the
    original is untouched and the temporary file removed.
    """
    try:
        original = path.stat()
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix, delete=False
        ) as handle:
            temp = Path(handle.name)
            try:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                handle.close()
                temp.unlink(missing_ok=True)
                raise
        try:
            os.chmod(temp, stat.S_IMODE(original.st_mode))
            _copy_owner(temp, original)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SheetError(f"cannot save {path}: {exc.strerror or exc}") from exc
    _fsync_folder(path.parent)


def _copy_owner(temp: Path, original: os.stat_result) -> None:
    if not hasattr(os, "chown") or (original.st_uid, original.st_gid) == (os.getuid(), os.getgid()):
        return
    # Only root may give a file away; a user may still set a group they belong to.
    with contextlib.suppress(OSError):
        os.chown(temp, original.st_uid, original.st_gid)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; folders cannot be opened on Windows, so skip there.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_unlocked(path: Path) -> tuple[FileStamp, bytes]:
    """The file's bytes and its stamp, refusing a file another program has open."""
    check_not_locked(path)
    try:
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError as exc:
        raise SheetError(f"{path} not found") from exc
    except OSError as exc:
        raise SheetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return (st.st_mtime_ns, st.st_size), data


class LocalFileBackend(SheetBackend):
    """A sheet that is a file on this machine, edited in place: its path, and the stamp of the
    version last read, so a write never replaces a file someone changed since."""

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(source, worksheet, options)
        self.path = Path(source).expanduser()
        self._stamp: FileStamp | None = None

    def changed_since_read(self) -> bool:
        return file_stamp(self.path) != self._stamp

    def check_writable(self) -> None:
        """Refuse to write a file that is open elsewhere or changed since it was read."""
        check_not_locked(self.path)
        if self.changed_since_read():
            raise SheetError(
                f"{self.path} changed since it was read: read it again before writing (nothing was written)"
            )
