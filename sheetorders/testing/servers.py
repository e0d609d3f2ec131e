"""What the local test servers share: a threaded HTTP/1.1 server that can close its kept-alive
connections when it stops, so no handler thread outlives it."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any, TypeVar


class ClosingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        """Stop serving (call from another thread than `serve_forever`'s) and close every socket."""
        self.shutdown()
        self.close_connections()
        self.server_close()

    def close_connections(self) -> None:
        """Close kept-alive connections so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


_Served = TypeVar("_Served", bound="ServedInBackground")


class ServedInBackground:
    """A local server that serves on a daemon thread between `start` and `stop` (or as a
    context manager); a subclass builds its HTTP server in `_make_server`."""

    thread_name = "server"

    def __init__(self) -> None:
        self._httpd: ClosingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self) -> ClosingHTTPServer:
        raise NotImplementedError

    def _before_stop(self) -> None:
        """Let go of requests held open (a hook for subclasses)."""

    def start(self: _Served) -> _Served:
        if self._httpd is not None:
            return self
        self._httpd = self._make_server()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._before_stop()
        httpd.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _Served) -> _Served:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"the {self.thread_name} is not running")
        return int(self._httpd.server_address[1])
