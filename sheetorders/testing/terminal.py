"""A pseudo-terminal for a `sheetorders` command: what a person at a terminal sees and types."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """`sheetorders ARGS` with a pseudo-terminal for its stdin, stdout and stderr."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sheetorders", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1", **env},
            close_fds=True,
        )
        os.close(slave)
        self.seen = ""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:  # the other side has closed (Linux says EIO)
            return False
        if not data:
            return False
        self.seen += _ANSI.sub("", data.decode("utf-8", "replace")).replace("\r\n", "\n")
        return True

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline and self._read(0.2), f"waited for {text!r}; got {self.seen!r}"
        self.seen = self.seen[self.seen.index(text) + len(text) :]

    def answer(self, text: str) -> None:
        os.write(self.master, (text + "\r").encode())

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        rest = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.2):
            if self.process.poll() is not None and not select.select([self.master], [], [], 0.2)[0]:
                break
        rest, self.seen = self.seen, ""
        code = self.process.wait(timeout=timeout)
        os.close(self.master)
        return code, rest
