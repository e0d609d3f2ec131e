"""Local sheet files (Excel and CSV): what may be replaced, and how a save fails cleanly."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from openpyxl import Workbook

from sheetorders.errors import SheetChanged, SheetError, SheetLocked, SheetNotWritable
from sheetorders.sheets import CellWrite
from sheetorders.sheets.csvfile import CsvBackend
from sheetorders.sheets.excel import ExcelBackend
from sheetorders.sheets.files import LocalFileBackend, atomic_write

NOBODY = 65534
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def make_sheet(folder: Path, kind: str) -> Path:
    if kind == "csv":
        path = folder / "orders.csv"
        path.write_text("service,link,quantity\n1,https://a,100\n")
        return path
    path = folder / "orders.xlsx"
    workbook = Workbook()
    workbook.active.append(["service", "link", "quantity"])
    workbook.active.append([1, "https://a", 100])
    workbook.save(path)
    return path


def open_sheet(path: Path) -> LocalFileBackend:
    backend: LocalFileBackend = CsvBackend(str(path)) if path.suffix == ".csv" else ExcelBackend(str(path))
    backend.read()
    return backend


@pytest.fixture(params=["xlsx", "csv"])
def sheet(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_sheet(tmp_path, request.param)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder outside pytest's private (mode 700) tree, so that another user can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="sheetorders-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A 256 KiB file system of its own (a tmpfs: needs root)."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="sheetorders-tiny-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=755", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)
        folder.rmdir()


def as_nobody(action: Callable[[], None]) -> str:
    """Run `action` in a child process as user nobody: its error as text, or "" when it returned.

    The child has the modules of this process already loaded (nobody may not read this venv's
    interpreter, so it cannot start a new one); a warm-up write in the parent loads the rest.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        message = "the child did not finish"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            message = ""
        except BaseException as error:
            message = f"{type(error).__name__}: {error}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def warm_up(folder: Path, kind: str) -> None:
    """Load every module a write needs, so that the forked child imports nothing."""
    scratch = folder / "warm-up"
    scratch.mkdir()
    backend = open_sheet(make_sheet(scratch, kind))
    backend.write([CellWrite(2, 4, "x")])
    shutil.rmtree(scratch)


def chattr(path: Path, flag: str) -> None:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not available here: {done.stderr.decode().strip()}")


# --- what may be written -------------------------------------------------------------


def test_a_writable_file_passes_and_nothing_is_written(sheet: Path) -> None:
    before = sheet.read_bytes(), sheet.stat().st_mtime_ns
    backend = open_sheet(sheet)
    backend.check_writable([(1, 4), (2, 4)])
    backend.check_writable()
    assert (sheet.read_bytes(), sheet.stat().st_mtime_ns) == before
    assert sorted(p.name for p in sheet.parent.iterdir()) == [sheet.name]


def test_a_read_only_file_is_refused_before_and_at_the_save(sheet: Path) -> None:
    # Even for root, whom the permission bits do not stop: no write bit for anyone means "leave it".
    sheet.chmod(0o444)
    before = sheet.read_bytes()
    backend = open_sheet(sheet)
    with pytest.raises(SheetNotWritable) as raised:
        backend.check_writable([(2, 4)])
    message = str(raised.value)
    assert message.startswith(f"{sheet} is read-only (mode r--r--r--)") and "\n" not in message
    with pytest.raises(SheetNotWritable):
        backend.write([CellWrite(2, 4, "x")])
    assert sheet.read_bytes() == before
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o444
    assert sorted(p.name for p in sheet.parent.iterdir()) == [sheet.name]


def test_a_folder_without_write_permission_is_refused(sheet: Path) -> None:
    backend = open_sheet(sheet)
    sheet.parent.chmod(0o555)
    try:
        with pytest.raises(SheetNotWritable, match=r"the folder .* is read-only \(mode r-xr-xr-x\)"):
            backend.check_writable()
        with pytest.raises(SheetNotWritable):
            backend.write([CellWrite(2, 4, "x")])
    finally:
        sheet.parent.chmod(0o755)
    assert sorted(p.name for p in sheet.parent.iterdir()) == [sheet.name]


@pytest.mark.skipif(not IS_ROOT, reason="chattr +i needs root")
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_an_immutable_file_is_refused(shared_folder: Path, kind: str) -> None:
    sheet = make_sheet(shared_folder, kind)
    backend = open_sheet(sheet)
    chattr(sheet, "+i")
    with pytest.raises(SheetNotWritable, match=r"cannot be written by this user .*immutable"):
        backend.check_writable()
    with pytest.raises(SheetNotWritable):
        backend.write([CellWrite(2, 4, "x")])


@pytest.mark.skipif(not IS_ROOT or not hasattr(os, "fork"), reason="switching to user nobody needs root")
@pytest.mark.parametrize(
    ("kind", "mode"),
    [("xlsx", 0o444), ("csv", 0o444), ("xlsx", 0o644)],
    ids=["xlsx-0444", "csv-0444", "xlsx-0644"],
)
def test_a_file_the_user_may_not_write_is_never_replaced(shared_folder: Path, kind: str, mode: int) -> None:
    # Replacing a file needs write permission on its folder only: root's read-only file in a
    # folder everyone may write must still not be replaced by another user's run.
    warm_up(shared_folder, kind)
    shared_folder.chmod(0o777)
    sheet = make_sheet(shared_folder, kind)
    sheet.chmod(mode)
    before = sheet.read_bytes()

    def check() -> None:
        open_sheet(sheet).check_writable([(2, 4)])

    def write() -> None:
        open_sheet(sheet).write([CellWrite(2, 4, "x")])

    assert as_nobody(write).startswith(f"SheetNotWritable: {sheet} is read-only")
    assert as_nobody(check).startswith(f"SheetNotWritable: {sheet} is read-only")
    assert sheet.read_bytes() == before
    assert sheet.stat().st_uid == 0
    assert sorted(p.name for p in shared_folder.iterdir()) == [sheet.name]


@pytest.mark.skipif(not IS_ROOT or not hasattr(os, "fork"), reason="switching to user nobody needs root")
def test_someone_elses_file_in_a_sticky_folder_is_refused(shared_folder: Path) -> None:
    # In a folder like /tmp only a file's owner may replace it, even when everyone may write it.
    warm_up(shared_folder, "csv")
    shared_folder.chmod(0o1777)
    sheet = make_sheet(shared_folder, "csv")
    sheet.chmod(0o666)

    def check() -> None:
        open_sheet(sheet).check_writable()

    assert as_nobody(check).startswith(f"SheetNotWritable: {sheet} belongs to another user")


def test_a_linked_sheet_is_saved_into_the_file_it_points_to(sheet: Path) -> None:
    real = sheet.rename(sheet.with_name("real" + sheet.suffix))
    sheet.symlink_to(real.name)
    backend = open_sheet(sheet)
    backend.check_writable([(2, 4)])
    backend.write([CellWrite(2, 4, "x")])
    assert sheet.is_symlink()
    assert open_sheet(real).read().rows[0][3] == "x"
    assert not backend.changed_since_read()
    real.chmod(0o444)  # the link's own mode says nothing: the file's does
    with pytest.raises(SheetNotWritable, match="is read-only"):
        backend.check_writable()
    (real.parent / f"~${real.name}").write_text("someone")  # Excel has the file itself open
    with pytest.raises(SheetLocked, match=r"lock file ~\$real"):
        backend.check_writable()


def test_a_missing_file_is_refused(sheet: Path) -> None:
    backend = open_sheet(sheet)
    sheet.unlink()
    with pytest.raises(SheetError, match="not found"):
        backend.check_writable()


# --- what is saved is what was checked ------------------------------------------------


def test_a_change_made_during_the_save_is_not_overwritten(
    sheet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = open_sheet(sheet)
    theirs = b"service\nsaved by someone else while ours was being written\n"
    real_fsync = os.fsync
    edited: list[int] = []

    def fsync_then_edit(fd: int) -> None:  # the first fsync is our temporary file's
        real_fsync(fd)
        if not edited:
            edited.append(fd)
            sheet.write_bytes(theirs)

    monkeypatch.setattr(os, "fsync", fsync_then_edit)
    with pytest.raises(SheetChanged, match="changed since it was read"):
        backend.write([CellWrite(2, 4, "x")])
    assert edited
    assert sheet.read_bytes() == theirs
    assert sorted(p.name for p in sheet.parent.iterdir()) == [sheet.name]
    assert backend.changed_since_read()


def test_a_file_replaced_by_one_of_the_same_size_and_time_counts_as_changed(sheet: Path) -> None:
    backend = open_sheet(sheet)
    st = sheet.stat()
    other = sheet.with_name("other" + sheet.suffix)
    other.write_bytes(sheet.read_bytes())
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, sheet)  # a sync tool putting back a copy, say
    assert backend.changed_since_read()


def test_our_own_save_is_not_a_change(sheet: Path) -> None:
    backend = open_sheet(sheet)
    backend.write([CellWrite(2, 4, "x")])
    assert not backend.changed_since_read()
    backend.write([CellWrite(2, 5, "y")])
    assert not backend.changed_since_read()


# --- a failed save leaves nothing behind ----------------------------------------------


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # no late tracebacks
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_a_full_disk_leaves_the_original_and_no_temporary_file(tiny_disk: Path, kind: str) -> None:
    sheet = make_sheet(tiny_disk, kind)
    before = sheet.read_bytes()
    backend = open_sheet(sheet)
    with pytest.raises(SheetError, match=r"cannot save .*: No space left on device"):
        # Far more than the disk holds, even compressed (Excel keeps at most 32,767 characters a cell).
        backend.write([CellWrite(row, 4, secrets.token_urlsafe(24_000)) for row in range(2, 42)])
    assert sheet.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == [sheet.name]
    assert backend.changed_since_read()  # what is in memory was not saved: read again first


@pytest.mark.parametrize("where", ["write", "fsync", "chmod", "replace"])
def test_a_save_that_fails_anywhere_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"old\n")

    def write(handle: IO[bytes]) -> None:
        handle.write(b"new" * 100_000)
        if where == "write":
            raise KeyboardInterrupt  # Ctrl-C in the middle of the save

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if where != "write":
        monkeypatch.setattr(os, where, fail)
    with pytest.raises(KeyboardInterrupt if where == "write" else SheetError):
        atomic_write(path, write)
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["orders.csv"]
