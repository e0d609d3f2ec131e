"""CPU of one `PanelClient.add` over HTTP, from 1 thread and from many, and the panel's CPU.

The panel (`PanelServer`, no latency by default) runs in a child process, so this process's
CPU time is the client's alone; the server's CPU is read from the child. For each thread
count, one client with that concurrency places `--calls` orders from that many threads;
prints the client's CPU ms per call, the server's, and the wall time. `--profile N` adds the
top N functions by CPU of every client thread (figures then inflated several times over).
`--bare` also times the same POSTs sent straight through libcurl (pycurl, one keep-alive handle
per thread, no client around it: what the client's HTTP library alone costs, the rest being the
client's own work) and through a urllib3 pool (the pure-Python HTTP the client used before).

    .venv/bin/python benchmarks/client_overhead.py                 # 2000 calls, 1 and 16 threads
    .venv/bin/python benchmarks/client_overhead.py --calls 10000 --threads 16 --latency 0.05
    .venv/bin/python benchmarks/client_overhead.py --repeat 5 --bare
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import pycurl
import urllib3
from _bench import KEY, ServerProcess, ThreadProfiler

from sheetorders.panel import USER_AGENT, PanelClient

_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "Content-Type": "application/x-www-form-urlencoded",
}


def _threads(target: Callable[[range], None], calls: int, threads: int) -> tuple[float, float]:
    """Run `target` on `threads` threads sharing `calls` indexes; (wall, CPU) seconds."""
    workers = [threading.Thread(target=target, args=(range(i, calls, threads),)) for i in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_bare(server: ServerProcess, calls: int, threads: int, tag: str) -> float:
    """CPU ms per `add` POSTed straight through a urllib3 pool of `threads` keep-alive connections."""
    url = urlsplit(server.url)
    pool = urllib3.HTTPConnectionPool(
        url.hostname or "127.0.0.1", url.port, maxsize=threads, block=True, retries=False
    )
    timeout = urllib3.Timeout(connect=10.0, read=30.0)

    def work(indexes: range) -> None:
        for index in indexes:
            form = {"service": "1", "link": f"https://instagram.com/p/{tag}-{index:06d}", "quantity": "1000"}
            body = urlencode({**form, "key": KEY, "action": "add"}).encode()
            reply = pool.urlopen(
                "POST", url.path, body=body, headers=_HEADERS, retries=False, redirect=False, timeout=timeout
            )
            json.loads(reply.data)

    with pool:
        _threads(work, threads * 2, threads)  # warm up: one connection per thread
        _wall, cpu = _threads(work, calls, threads)
    return cpu * 1000 / calls


def run_bare_curl(server: ServerProcess, calls: int, threads: int, tag: str) -> float:
    """CPU ms per `add` POSTed straight through libcurl, one keep-alive handle per thread."""
    local = threading.local()

    def work(indexes: range) -> None:
        curl = getattr(local, "curl", None)
        if curl is None:
            curl = local.curl = pycurl.Curl()
            curl.setopt(pycurl.URL, server.url)
            curl.setopt(pycurl.NOSIGNAL, 1)
            curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in _HEADERS.items()] + ["Expect:"])
        for index in indexes:
            form = {"service": "1", "link": f"https://instagram.com/p/{tag}-{index:06d}", "quantity": "1000"}
            body = io.BytesIO()
            curl.setopt(pycurl.POSTFIELDS, urlencode({**form, "key": KEY, "action": "add"}))
            curl.setopt(pycurl.WRITEDATA, body)
            curl.perform()
            json.loads(body.getvalue())

    _threads(work, threads * 2, threads)  # warm up: one connection per thread
    _wall, cpu = _threads(work, calls, threads)
    return cpu * 1000 / calls


def run(server: ServerProcess, calls: int, threads: int, tag: str, profile: int = 0) -> dict[str, Any]:
    """`calls` adds spread over `threads` threads (client concurrency = threads)."""
    with PanelClient(server.url, KEY, name="bench", concurrency=threads) as client:
        # Warm up: one connection per thread, imports, caches.
        warm = [
            threading.Thread(
                target=client.add,
                args=(1, {"link": f"https://instagram.com/p/{tag}-warm-{i}", "quantity": 1000}),
            )
            for i in range(threads)
        ]
        for t in warm:
            t.start()
        for t in warm:
            t.join()

        def work(indexes: range) -> None:
            for index in indexes:
                client.add(1, {"link": f"https://instagram.com/p/{tag}-{index:06d}", "quantity": 1000})

        server_before = server.stats()["cpu"]
        profiler = ThreadProfiler("cpu") if profile else contextlib.nullcontext()
        with profiler:
            wall, cpu = _threads(work, calls, threads)
        server_cpu = server.stats()["cpu"] - server_before
    return {
        "threads": threads,
        "calls": calls,
        "wall_s": wall,
        "client_cpu_ms_per_call": cpu * 1000 / calls,
        "server_cpu_ms_per_call": server_cpu * 1000 / calls,
        "server_cpu_s": server_cpu,
        "profile": profiler.report(profile) if isinstance(profiler, ThreadProfiler) else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the panel adds to every request")
    parser.add_argument("--repeat", type=int, default=1, help="runs per thread count (best is shown)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare", action="store_true", help="also time bare libcurl and urllib3 POSTs")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the top N functions by CPU"
    )
    args = parser.parse_args(argv)

    results = []
    with ServerProcess(latency=args.latency) as server:
        for threads in args.threads:
            runs = [
                run(server, args.calls, threads, f"t{threads}-r{r}", args.profile) for r in range(args.repeat)
            ]
            best = min(runs, key=lambda r: r["client_cpu_ms_per_call"])
            if args.bare:
                bare = [run_bare(server, args.calls, threads, f"b{threads}-r{r}") for r in range(args.repeat)]
                best["bare_urllib3_cpu_ms_per_call"] = min(bare)
                curl = [
                    run_bare_curl(server, args.calls, threads, f"c{threads}-r{r}") for r in range(args.repeat)
                ]
                best["bare_libcurl_cpu_ms_per_call"] = min(curl)
            results.append(best)
    if args.json:
        print(json.dumps(results))
        return
    print(f"load average {os.getloadavg()[0]:.2f}, latency {args.latency}s, {args.calls} add calls each")
    for r in results:
        print(
            f"  {r['threads']:>3} threads: client {r['client_cpu_ms_per_call']:.3f} ms CPU/call, "
            f"server {r['server_cpu_ms_per_call']:.3f} ms CPU/call ({r['server_cpu_s']:.2f} s), "
            f"wall {r['wall_s']:.2f} s"
        )
        if "bare_urllib3_cpu_ms_per_call" in r:
            print(
                f"               bare libcurl {r['bare_libcurl_cpu_ms_per_call']:.3f} ms CPU/call, "
                f"bare urllib3 {r['bare_urllib3_cpu_ms_per_call']:.3f} ms CPU/call"
            )
        if r["profile"]:
            print(r["profile"])


if __name__ == "__main__":
    main()
