"""POSTs to one panel over keep-alive HTTP/1.1 connections, through libcurl (pycurl).

libcurl does the HTTP work outside the interpreter's lock, at a fraction of the CPU of a
pure-Python client. Every request ends by its deadline (from connecting to the reply's last
byte), and a failure says how far the request got: a request that failed before it was handed
to a connection surely never reached the panel. libcurl sends a request once more on a fresh
connection when a reused one died before answering; here that second send is refused, so a
request leaves at most once.
"""

from __future__ import annotations

import functools
import math
import os
import select
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pycurl

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_REPLY",
    "Connections",
    "Endpoint",
    "Headers",
    "NoReply",
    "Reply",
    "Timeouts",
    "ca_certificates",
]

MAX_REPLY = 64 * 1024 * 1024  # bytes; a longer reply is cut off and taken for a broken one


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect (TCP, TLS, a proxy's tunnel); seconds a request may go without a byte
    moving either way once connected (checked about once a second; bytes handed to the system
    count as moving, so a huge body the panel stops reading is ended by the deadline alone).
    The whole request has its deadline besides."""

    connect: float = 10.0
    read: float = 30.0

    def __post_init__(self) -> None:
        if not (self.connect > 0 and self.read > 0):
            raise ValueError("timeouts must be positive")


DEFAULT_TIMEOUT = Timeouts(connect=10.0, read=30.0)


class NoReply(Exception):
    """A request that got no complete reply. `phase` says how far it got: "connect" (nothing
    of it left this machine), "send" (it was being handed over), "read" (it was sent);
    `cut`: the deadline ended it, not a stall."""

    def __init__(self, kind: str, reason: str, phase: str, cut: bool = False) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.phase = phase
        self.cut = cut


class Headers:
    """A reply's header fields, looked up by name in any letter case."""

    def __init__(self, fields: Mapping[str, list[str]] | None = None) -> None:
        self._fields = dict(fields or {})

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._fields.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: Headers
    content: bytes


def _head(lines: list[bytes]) -> tuple[str, Headers]:
    """The reason phrase and fields of the last header block (a 100 Continue's, or a proxy's
    answer to CONNECT, come before the reply's own)."""
    reason = ""
    fields: dict[str, list[str]] = {}
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if line.startswith("HTTP/"):
            reason, fields = line.split(" ", 2)[2] if line.count(" ") >= 2 else "", {}
            continue
        name, sep, value = line.partition(":")
        if sep and name and not name[0].isspace():
            fields.setdefault(name.strip().lower(), []).append(value.strip())
    return reason, Headers(fields)


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this URL (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


_URL_SAFE = "/%:@!$&'()*+,;=~?"  # what a URL's path and query may hold as it is


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the panel, maybe through a proxy; `error` when the URL is unusable."""

    url: str = ""
    shown: str = ""  # the URL for a log line: no user or password
    proxy: str | None = None
    error: str = ""

    @classmethod
    def of(cls, url: str) -> Endpoint:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            return cls(error=f"cannot parse it: {exc}")
        scheme = parts.scheme.lower()
        host = parts.hostname
        if scheme not in ("http", "https") or not host:
            return cls(error="not an http:// or https:// URL with a host")
        try:
            host = host.encode("idna").decode("ascii")  # a name in any script, as DNS knows it
        except UnicodeError as exc:
            return cls(error=f"its host is not a valid name ({exc})")
        where = f"[{host}]" if ":" in host else host
        target = quote(parts.path or "/", safe=_URL_SAFE) + (
            f"?{quote(parts.query, safe=_URL_SAFE)}" if parts.query else ""
        )
        place = f"{where}{f':{port}' if port else ''}"
        user = parts.netloc.rpartition("@")[0]
        login = f"{user}@" if user else ""
        shown = f"{scheme}://{place}{target}"
        whole = f"{scheme}://{login}{place}{target}"
        if not whole.isascii():
            return cls(error="its user or password is not plain ASCII; percent-encode it")
        return cls(whole, shown, _env_proxy(scheme, host))


@functools.cache
def ca_certificates() -> tuple[str | None, str | None]:
    """The certificates HTTPS trusts (a file, a folder): the ones SSL_CERT_FILE or SSL_CERT_DIR
    name, else certifi's bundle, else the system's."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = None if cafile else os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            paths = ssl.get_default_verify_paths()
            cafile, capath = paths.cafile or paths.openssl_cafile, paths.capath
    return cafile, capath


_TLS_FAILURES = frozenset(
    getattr(pycurl, name)
    for name in (
        "E_SSL_CONNECT_ERROR",
        "E_PEER_FAILED_VERIFICATION",
        "E_SSL_CERTPROBLEM",
        "E_SSL_CIPHER",
        "E_SSL_CACERT_BADFILE",
        "E_SSL_CRL_BADFILE",
        "E_SSL_ISSUER_ERROR",
        "E_SSL_PINNEDPUBKEYNOTMATCH",
        "E_SSL_INVALIDCERTSTATUS",
        "E_SSL_ENGINE_NOTFOUND",
        "E_SSL_ENGINE_SETFAILED",
        "E_SSL_ENGINE_INITFAILED",
        "E_USE_SSL_FAILED",
    )
    if hasattr(pycurl, name)
)
_CONNECTION_LOST = frozenset(
    {pycurl.E_GOT_NOTHING, pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR, pycurl.E_ABORTED_BY_CALLBACK}
)


def _closed_by_peer(fd: int) -> bool:
    """Whether an idle connection has something to read: the peer closed it (or sent what
    nobody asked for); either way it must not carry the next request."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class _Lane:
    """One libcurl handle: one keep-alive connection, one request at a time."""

    def __init__(
        self,
        endpoint: Endpoint,
        timeouts: Timeouts,
        deadline: float,
        headers: Mapping[str, str],
        share: pycurl.CurlShare,
    ) -> None:
        self._heads: list[bytes] = []
        self._body: list[bytes] = []
        self._size = 0
        self._sends = 0
        self._too_long = False
        self._read = timeouts.read
        self._moved = -1  # bytes moved so far, header lines counted as bytes
        self._quiet_since = 0.0
        self._stalled = False
        self._socket = -1  # the connection the last request left open, if any
        self._fresh = False
        curl = pycurl.Curl()
        options: list[tuple[int, object]] = [
            (pycurl.URL, endpoint.url),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.NOSIGNAL, 1),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.CONNECTTIMEOUT_MS, _milliseconds(timeouts.connect)),
            (pycurl.TIMEOUT_MS, _milliseconds(deadline)),
            (pycurl.NOPROGRESS, 0),
            (pycurl.XFERINFOFUNCTION, self._progress),
            (pycurl.ACCEPT_ENCODING, "gzip, deflate"),
            # "Expect:" off: the body goes with the head, never after a wait for 100 Continue.
            (pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in headers.items()] + ["Expect:"]),
            (pycurl.PROXY, endpoint.proxy or ""),  # "": no proxy but the one chosen here
            (pycurl.COOKIEFILE, ""),  # cookies the panel's CDN sets, kept in memory, shared
            (pycurl.SHARE, share),
            (pycurl.HEADERFUNCTION, self._heads.append),
            (pycurl.WRITEFUNCTION, self._write),
            (pycurl.PREREQFUNCTION, self._about_to_send),
        ]
        cafile, capath = ca_certificates()
        if cafile:
            options += [(pycurl.CAINFO, cafile), (pycurl.PROXY_CAINFO, cafile)]
        if capath:
            options += [(pycurl.CAPATH, capath), (pycurl.PROXY_CAPATH, capath)]
        for option, value in options:
            curl.setopt(option, value)
        self._curl = curl

    def _write(self, data: bytes) -> int | None:
        self._size += len(data)
        if self._size > MAX_REPLY:
            self._too_long = True
            return 0  # libcurl stops the transfer and drops the connection
        self._body.append(data)
        return None

    def _progress(self, _down_total: int, down: int, _up_total: int, up: int) -> int:
        moved = down + up + len(self._heads)
        now = time.monotonic()
        if moved != self._moved or self._sends == 0:
            self._moved, self._quiet_since = moved, now
        elif now - self._quiet_since >= self._read:
            self._stalled = True
            return 1  # libcurl stops the transfer
        return 0

    def _about_to_send(self, *_connection: object) -> int:
        self._sends += 1
        return pycurl.PREREQFUNC_OK if self._sends == 1 else pycurl.PREREQFUNC_ABORT

    def post(self, body: bytes) -> Reply:
        self._heads.clear()
        self._body = []
        self._size, self._sends, self._too_long, self._stalled, self._moved = 0, 0, False, False, -1
        curl = self._curl
        # libcurl reuses a connection idle for less than a second without checking it: one the
        # panel has closed since would take the request and die, and the request would be unclear.
        fresh = self._socket >= 0 and _closed_by_peer(self._socket)
        if fresh != self._fresh:
            curl.setopt(pycurl.FRESH_CONNECT, int(fresh))
            self._fresh = fresh
        curl.setopt(pycurl.POSTFIELDS, body)
        try:
            curl.perform()
        except pycurl.error as exc:
            code, message = exc.args[0], exc.args[1] if len(exc.args) > 1 else ""
            raise self._no_reply(int(code), str(message), len(body)) from None
        finally:
            self._socket = curl.getinfo(pycurl.ACTIVESOCKET)
        reason, headers = _head(self._heads)
        return Reply(int(curl.getinfo(pycurl.RESPONSE_CODE)), reason, headers, b"".join(self._body))

    def _no_reply(self, code: int, message: str, length: int) -> NoReply:
        if self._sends == 0:
            return NoReply(self._connect_failure(code), message, "connect")
        sent = self._sends == 1 and self._curl.getinfo(pycurl.SIZE_UPLOAD_T) >= length
        phase = "read" if sent else "send"
        if self._stalled:
            kind = "ReadTimeout" if sent else "WriteTimeout"
            return NoReply(kind, f"nothing for {self._read:g} s", phase)
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return NoReply("ReadTimeout" if sent else "WriteTimeout", message, phase, cut=True)
        if self._too_long:
            return NoReply("ProtocolError", f"the reply is longer than {MAX_REPLY} bytes", phase)
        if self._sends > 1:  # the connection died unanswered; libcurl wanted to send it again
            return NoReply("ConnectionError", "the connection closed before any reply", phase)
        if code in _CONNECTION_LOST:
            return NoReply("ConnectionError", message, phase)
        return NoReply("ProtocolError", message, phase)  # not HTTP, cut short, badly encoded

    def _connect_failure(self, code: int) -> str:
        if code == pycurl.E_COULDNT_RESOLVE_HOST:
            return "DNSError"
        if code == pycurl.E_COULDNT_RESOLVE_PROXY:
            return "ProxyError"
        if code in _TLS_FAILURES:
            return "TLSError"
        if code == pycurl.E_OPERATION_TIMEDOUT:
            return "ConnectTimeout"
        return "ConnectError"

    def close(self) -> None:
        self._curl.close()


class Connections:
    """Keep-alive connections to the panel, straight or through the environment's proxy; as
    many as requests are sent at once (the caller bounds that), the most recently used reused
    first. One cookie jar for all of them."""

    def __init__(
        self, endpoint: Endpoint, timeouts: Timeouts, deadline: float, headers: Mapping[str, str]
    ) -> None:
        self._lane = functools.partial(_Lane, endpoint, timeouts, deadline, dict(headers))
        self._share = pycurl.CurlShare()
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_COOKIE)
        self._idle: list[_Lane] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, body: bytes) -> Reply:
        """POST `body` (a form) and read the whole reply; NoReply when none came."""
        with self._lock:
            if self._closed:
                raise NoReply("ConnectError", "the connection pool is closed", "connect")
            lane = self._idle.pop() if self._idle else None
        if lane is None:
            lane = self._lane(self._share)
        try:
            return lane.post(body)
        finally:
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(lane)
            if closed:
                lane.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for lane in idle:
            lane.close()
