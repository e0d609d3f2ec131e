"""Locks between sheetorders processes: on a journal, and on a sheet file."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from sheetorders.errors import LockHeld


@contextmanager
def process_lock(lock_path: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold `lock_path` while inside; a second process is told who holds it (or waits)."""
    info_path = Path(f"{lock_path}.owner")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        holder = _holder(info_path)
        raise LockHeld(
            f"{what} is in use by {holder}; wait for it to finish, or pass --wait to queue behind it"
        ) from None
    try:
        info_path.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]),
                }
            )
        )
        yield
    finally:
        info_path.unlink(missing_ok=True)
        lock.release()


def _holder(info_path: Path) -> str:
    try:
        owner = json.loads(info_path.read_text())
        return f"pid {owner['pid']} on {owner['host']} since {owner['since']} ({owner['command']})"
    except (OSError, ValueError, KeyError):
        return "another sheetorders process"
