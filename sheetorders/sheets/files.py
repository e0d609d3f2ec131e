"""File helpers shared by the backends that edit a local file in place (Excel, CSV)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from sheetorders.errors import SheetChanged, SheetError, SheetLocked, SheetNotWritable
from sheetorders.locks import process_lock
from sheetorders.sheets.base import SheetBackend

# (mtime_ns, size, inode): a file replaced by a copy of the same size and time is a change too.
FileStamp = tuple[int, int, int]


def is_url(source: str) -> bool:
    return "://" in source


def _stamp(st: os.stat_result) -> FileStamp:
    return st.st_mtime_ns, st.st_size, st.st_ino


def file_stamp(path: Path) -> FileStamp | None:
    """The stamp of `path`, or None when it does not exist."""
    try:
        return _stamp(path.stat())
    except FileNotFoundError:
        return None


def check_not_locked(path: Path) -> None:
    """Raise SheetLocked when Excel or LibreOffice has `path` open (they leave a lock file beside
    it; beside the file a link points to, when opened through that)."""
    for opened in dict.fromkeys([path, Path(os.path.realpath(path))]):
        excel_lock = opened.with_name(f"~${opened.name}")
        if excel_lock.exists():
            raise SheetLocked(
                f"{path} is open in Excel (lock file {excel_lock.name}): close it and run again "
                "(if nobody has it open, the lock file was left by a crash: delete it)"
            )
        office_lock = opened.with_name(f".~lock.{opened.name}#")
        if office_lock.exists():
            raise SheetLocked(
                f"{path} is open in LibreOffice (lock file {office_lock.name}): close it and run again"
            )


def _may_write(st: os.stat_result) -> bool:
    """Whether the permission bits of `st` let this process write it (root: any write bit)."""
    if not hasattr(os, "geteuid"):
        return bool(st.st_mode & stat.S_IWRITE)
    uid = os.geteuid()
    if uid == 0:
        return bool(st.st_mode & 0o222)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _access(path: Path, mode: int) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _not_writable(what: str, path: Path, st: os.stat_result) -> str | None:
    """Why this process may not write `path` (a file, or a folder), or None when it may.

    os.access answers for this user, ACLs, read-only mounts and immutable files; root passes
    every permission check, so a file or folder with no write bit for anyone (`chmod a-w`,
    how a person marks something read-only) is refused for root too.
    """
    mode = stat.filemode(st.st_mode)[1:]
    if not st.st_mode & 0o222:
        return f"{what} is read-only (mode {mode})"
    if _access(path, os.W_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0)):
        return None
    if not _may_write(st):
        return f"{what} is read-only for this user (mode {mode}, owner uid {st.st_uid})"
    return (
        f"{what} cannot be written by this user although its mode ({mode}) allows it: "
        "it may be marked immutable (see lsattr) or on a read-only file system"
    )


def check_can_replace(path: Path) -> None:
    """Raise SheetNotWritable unless this process may replace `path` with a new version.

    A save writes a temporary file in the same folder and renames it over `path`, which only
    needs write permission on the folder; a file its user could not write must still never
    be replaced, so the file is checked as well as the folder. In a sticky folder (like /tmp)
    only the owner of a file, or of the folder, may replace it. A link is followed: what is
    replaced is the file it points to, in that file's folder.
    """
    real = Path(os.path.realpath(path))
    try:
        st = real.stat()
        folder = real.parent.stat()
    except FileNotFoundError:
        raise SheetError(f"{path} not found") from None
    except OSError as exc:
        raise SheetError(f"cannot check {path}: {exc.strerror or exc}") from exc
    hint = ": make it writable and run again (nothing was written)"
    reason = _not_writable(str(path), real, st)
    if reason is not None:
        raise SheetNotWritable(reason + hint)
    reason = _not_writable(f"the folder {real.parent}", real.parent, folder)
    if reason is not None:
        raise SheetNotWritable(
            f"cannot save {path}: {reason}, and a save writes a new file beside the old one{hint}"
        )
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    if folder.st_mode & stat.S_ISVTX and uid not in (0, st.st_uid, folder.st_uid):
        raise SheetNotWritable(
            f"{path} belongs to another user (uid {st.st_uid}) in a folder where only the owner may "
            "replace a file: run as its owner, or move it to a folder of yours (nothing was written)"
        )


class _Output(io.RawIOBase):
    """The temporary file as a writer sees it. Once the writer is done, or failed, it swallows
    whatever still comes (a half-written zip finishes itself when garbage-collected) rather
    than raising into an "Exception ignored" traceback long after the error was reported."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self._position = 0
        self.done = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = len(data) if self.done else self._handle.write(data)
        self._position += written
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not self.done:
            self._position = self._handle.seek(offset, whence)
        elif whence == os.SEEK_SET:
            self._position = offset
        else:
            self._position += offset
        return self._position

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        if not self.done:
            self._handle.flush()


def atomic_write(
    path: Path, write: Callable[[IO[bytes]], object], before_replace: Callable[[], None] | None = None
) -> FileStamp:
    """Replace `path` with what `write` puts into a binary file, all or nothing; returns the
    stamp of the new file.

    The new content goes to a temporary file in the same folder (so the final
    rename stays on one file system), is flushed to disk, gets the original's
    permission bits, and then replaces the original; `before_replace` runs just
    before that rename and may refuse it by raising. On any failure (the disk
    full, `write` or `before_replace` raising, an interrupt) the original is
    untouched and the temporary file removed. A link is followed: the file it points to is
    replaced, and the link stays.
    """
    target = Path(os.path.realpath(path))
    try:
        original = target.stat()
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    except OSError as exc:
        raise SheetError(f"cannot save {path}: {exc.strerror or exc}") from exc
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:  # closed (fd included) even when a flush fails
            output = _Output(handle)
            try:
                write(cast(IO[bytes], output))
            finally:
                output.done = True
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, stat.S_IMODE(original.st_mode))
        _copy_owner(temp, original)
        stamp = _stamp(temp.stat())
        if before_replace is not None:
            before_replace()
        os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SheetError(f"cannot save {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_folder(target.parent)
    return stamp


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
    return _stamp(st), data


class LocalFileBackend(SheetBackend):
    """A sheet that is a file on this machine, edited in place: its path, and the stamp of the
    version last read, so a write never replaces a file someone changed since."""

    def __init__(self, source: str, worksheet: str | None = None, options: Mapping[str, Any] | None = None):
        super().__init__(source, worksheet, options)
        self.path = Path(source).expanduser()
        self._stamp: FileStamp | None = None

    @property
    def identity(self) -> str:
        return f"file:{os.path.realpath(self.path)}#{(self.worksheet or '').casefold()}"

    def content_stamp(self) -> str | None:
        """Size, modification time and a hash of the file's bytes."""
        try:
            data = self.path.read_bytes()
            stat = self.path.stat()
        except OSError:
            return None
        return f"{stat.st_size}:{stat.st_mtime_ns}:{hashlib.sha256(data).hexdigest()}"

    def hold(self, wait: bool = False) -> AbstractContextManager[None]:
        """A lock file beside the sheet (hidden), held for the pass."""
        real = Path(os.path.realpath(self.path))
        return process_lock(real.with_name(f".{real.name}.sheetorders-lock"), str(self.path), wait)

    def changed_since_read(self) -> bool:
        return file_stamp(self.path) != self._stamp

    def check_writable(self, cells: Iterable[tuple[int, int]] = ()) -> None:
        """Refuse, before anything is ordered, a file that cannot be saved: open in Excel or
        LibreOffice, read-only, or in a folder where no new file can be written (see
        `check_can_replace`). Subclasses also check `cells`."""
        check_not_locked(self.path)
        check_can_replace(self.path)

    def _check_before_save(self) -> None:
        """Refuse to save over a file that is open elsewhere, may not be replaced, or changed
        since it was read."""
        check_not_locked(self.path)
        check_can_replace(self.path)
        if self.changed_since_read():
            raise SheetChanged(
                f"{self.path} changed since it was read: read it again before writing (nothing was written)"
            )

    def _save(self, write: Callable[[IO[bytes]], object]) -> None:
        """Save what `write` produces over the file, checked again (`_check_before_save`) just
        before it replaces the file, so that a change made while it was being written is kept."""
        try:
            self._stamp = atomic_write(self.path, write, before_replace=self._check_before_save)
        except BaseException:
            self._stamp = None  # what is in memory holds unsaved cells: the caller must read again
            raise
