"""Shared helpers of the benchmark scripts (not a benchmark itself).

- `ServerProcess`: the project's PanelServer in a child process, driven over a pipe, so the
  benchmark process's CPU time and memory are the client's alone while the ledger (calls by
  action, requests in flight) stays readable.
- `build_sheet`: writes an order workbook in a child process (its memory stays out of the
  client's peak).
- `PhaseTimer`: wall and CPU time of each step of a pass, by wrapping SheetPass's methods.
- `ThreadProfiler`: cProfile over the calling thread and every thread started while it runs
  (plain cProfile sees only the thread that enabled it, and a pass places orders from a pool).
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import io
import multiprocessing
import os
import pstats
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, "") and str(Path(__file__).resolve().parent.parent) not in sys.path:
    # Run as `python benchmarks/<name>.py` from a checkout: make the package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sheetorders import pipeline
from sheetorders.testing.panel_server import Faults, PanelServer, default_catalog
from sheetorders.workbook import build_order_workbook

KEY = "bench-key"
BIG_BALANCE = Decimal("1000000000")
_SPAWN = multiprocessing.get_context("spawn")


# --- rows ---------------------------------------------------------------------------


def default_services() -> list[tuple[str, int, int]]:
    """(id, min, max) of the catalog's Default-type services."""
    return [
        (str(s["service"]), int(s["min"]), int(s["max"])) for s in default_catalog() if s["type"] == "Default"
    ]


def order_rows(count: int) -> list[dict[str, Any]]:
    """`count` valid Default-type rows, each on its own link, quantity within the service's range."""
    services = default_services()
    rows = []
    for index in range(count):
        service, low, high = services[index % len(services)]
        quantity = min(high, max(low, 1000 + (index % 9) * 100))
        link = f"https://instagram.com/p/bench-{index:06d}"
        rows.append({"service": int(service), "link": link, "quantity": quantity})
    return rows


def write_sheet(path: Path, rows: list[dict[str, Any]]) -> None:
    build_order_workbook(path, rows)


def _build(path: str, rows: list[dict[str, Any]]) -> None:
    write_sheet(Path(path), rows)


def build_sheet(path: Path, rows: list[dict[str, Any]]) -> None:
    """`write_sheet` in a child process, so its memory is not the benchmark's."""
    process = _SPAWN.Process(target=_build, args=(str(path), rows))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"building {path} failed (exit code {process.exitcode})")


# --- the panel server in its own process -----------------------------------------------


def _serve(conn: Any, latency: float, balance: str, speed: float) -> None:
    server = PanelServer(key=KEY, balance=Decimal(balance), speed=speed, faults=Faults(latency=latency))
    server.start()
    conn.send(server.url)
    while True:
        command, argument = conn.recv()
        if command == "stats":
            with server.ledger.lock:
                conn.send(
                    {
                        "calls": dict(server.ledger.calls),
                        "max_in_flight": server.ledger.max_in_flight,
                        "connections": server.ledger.connections,
                        "orders": len(server.ledger.orders),
                        "cpu": time.process_time(),
                    }
                )
        elif command == "reset":
            server.reset_calls()
            conn.send(None)
        elif command == "latency":
            server.faults.latency = argument
            conn.send(None)
        elif command == "place":
            ids = []
            for form in argument:
                _status, payload = server.handle({"key": KEY, "action": "add", **form})
                if "order" not in payload:
                    raise RuntimeError(f"the panel refused a setup order: {payload}")
                ids.append(str(payload["order"]))
            conn.send(ids)
        elif command == "stop":
            server.stop()
            conn.send(None)
            return


class ServerProcess:
    """PanelServer (API v2 over HTTP on 127.0.0.1) in a spawned child process."""

    def __init__(self, *, latency: float, speed: float = 0.0, balance: Decimal = BIG_BALANCE) -> None:
        self._conn, child = _SPAWN.Pipe()
        self._process = _SPAWN.Process(
            target=_serve, args=(child, latency, str(balance), speed), name="panel-server", daemon=True
        )
        self._process.start()
        self.url: str = self._conn.recv()

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def stats(self) -> dict[str, Any]:
        """calls by action, max requests in flight, TCP connections, orders, the server's CPU seconds."""
        return self._ask("stats")

    def reset_calls(self) -> None:
        self._ask("reset")

    def set_latency(self, seconds: float) -> None:
        self._ask("latency", seconds)

    def place(self, forms: list[dict[str, str]]) -> list[str]:
        """Create orders straight in the panel (no HTTP, no latency); their IDs."""
        return self._ask("place", forms)

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._ask("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- measuring -----------------------------------------------------------------------

# Steps of run_pass in the order they run; a step the package does not have is skipped.
# The steps of `pipeline.run_pass`, by the names it calls them under, and their labels.
PASS_STEPS = {
    "_prefetch": "prefetch",
    "read_sheet": "read",
    "_reconcile": "reconcile",
    "_load_catalogs": "services+balance",
    "make_plan": "plan",
    "_ready_to_send": "check+claim",
    "_place": "submit",
    "_actions": "handle_actions",
    "_refresh": "refresh",
    "_write_back": "write_back",
}


class PhaseTimer:
    """Wall and CPU seconds of each step of `run_pass`.

    CPU is time.process_time: every thread of this process, so the pool's threads count.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def __enter__(self) -> PhaseTimer:
        for name, label in PASS_STEPS.items():
            self._wrap(pipeline, name, label)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Steps in the order they first ran."""
        return {name: {"wall": self.wall[name], "cpu": self.cpu[name]} for name in self.wall}


class ThreadProfiler:
    """cProfile of this thread and of every thread started while profiling, merged.

    clock "cpu" times each thread by its own CPU time (time.thread_time): where the CPU goes.
    clock "wall" uses wall time: a thread's waits (for the network, for a lock) count too, so
    with 16 threads the totals are up to 16 times the pass's wall time.
    """

    def __init__(self, clock: str = "cpu") -> None:
        self._timer = time.thread_time if clock == "cpu" else time.perf_counter
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_thread(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(self._timer)
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiler:
        main = cProfile.Profile(self._timer)
        self._profiles.append(main)
        threading.setprofile(self._start_thread)
        main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self._profiles[0].disable()
        threading.setprofile(None)  # type: ignore[arg-type]

    def stats(self) -> pstats.Stats:
        stats = pstats.Stats(self._profiles[0], stream=io.StringIO())
        for profile in self._profiles[1:]:
            stats.add(profile)
        return stats

    def report(self, top: int, dump: Path | None = None) -> str:
        """The top functions by own time and by cumulative time; all stats to `dump` if given."""
        stats = self.stats()
        if dump is not None:
            stats.dump_stats(dump)
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return out.getvalue()


def peak_rss_mib() -> float:
    """ru_maxrss of this process (KiB on Linux, bytes on macOS) in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def machine() -> dict[str, Any]:
    """CPUs and load average: other work on the machine shows in every figure."""
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def print_phases(phases: dict[str, dict[str, float]]) -> None:
    print("  steps of the pass       wall s    CPU s")
    for name, phase in phases.items():
        print(f"    {name:<20} {phase['wall']:>8.2f} {phase['cpu']:>8.2f}")


@contextlib.contextmanager
def clock() -> Iterator[Callable[[], tuple[float, float]]]:
    """Yields a function giving (wall, CPU) seconds since entering; frozen on exit."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result: list[float] = []

    def elapsed() -> tuple[float, float]:
        if result:
            return result[0], result[1]
        return time.perf_counter() - wall0, time.process_time() - cpu0

    yield elapsed
    result.extend(elapsed())
