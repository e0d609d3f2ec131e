"""How the client's requests fail before any reply, and what each failure means for money.

A request that failed before a byte of it left this machine (DNS, refused, connect timeout, TLS
handshake, a certificate not trusted) surely did not reach the panel: safe to send again, even an
`add`. HTTPS is checked against a local panel with a certificate of a throwaway CA.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sheetorders import transport
from sheetorders.errors import AmbiguousOrder, PanelUnavailable
from sheetorders.panel import PanelClient, RetryPolicy, Timeouts
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.clients import Sleeps, add_order
from sheetorders.testing.panel_server import PanelServer


def assert_not_sent(error: PanelUnavailable, kind: str) -> None:
    assert not isinstance(error, AmbiguousOrder)
    assert f"could not connect ({kind}" in str(error) and "nothing was sent" in str(error)
    assert KEY not in str(error)


# --- certificates ------------------------------------------------------------------


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, key: Any, signer: Any, *, ca: bool) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a certificate it signed for 127.0.0.1, as PEM files."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("certs")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("sheetorders test CA", "sheetorders test CA", ca_key, ca_key, ca=True)
    server_cert = _certificate("127.0.0.1", "sheetorders test CA", server_key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(pem))
    paths["cert"].write_bytes(server_cert.public_bytes(pem))
    paths["key"].write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture
def https_panel(certs: dict[str, Path]) -> Iterator[PanelServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["cert"], certs["key"])
    with PanelServer(key=KEY, speed=0, tls=context) as server:
        yield server


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """trust(path): the client trusts the certificates in `path` only (SSL_CERT_FILE)."""

    def use(path: Path) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", str(path))
        transport.ca_certificates.cache_clear()

    transport.ca_certificates.cache_clear()
    yield use
    monkeypatch.undo()
    transport.ca_certificates.cache_clear()


# --- HTTPS -------------------------------------------------------------------------


def test_https_to_a_trusted_panel_works_and_keeps_its_connection(
    https_panel: PanelServer, certs: dict[str, Path], trust: Any
) -> None:
    trust(certs["ca"])
    assert https_panel.url.startswith("https://127.0.0.1:")
    with PanelClient(https_panel.url, KEY, name="test") as client:
        assert add_order(client) == "10001"
        for _ in range(4):
            assert client.balance().balance == Decimal(1000) - Decimal("0.24")
    assert https_panel.ledger.connections == 1
    request = https_panel.ledger.last_request
    assert request is not None and KEY not in request.path


def test_an_untrusted_certificate_fails_the_handshake_and_nothing_is_sent(
    https_panel: PanelServer, trust: Any
) -> None:
    trust(Path(ssl.get_default_verify_paths().openssl_cafile or "/nonexistent"))  # not the test CA
    sleeps = Sleeps()
    with (
        PanelClient(https_panel.url, KEY, sleep=sleeps, retry=RetryPolicy(attempts=3)) as client,
        pytest.raises(PanelUnavailable) as down,
    ):
        add_order(client)
    assert_not_sent(down.value, "TLSError")
    assert "certificate" in str(down.value)
    assert len(sleeps.waits) == 2  # safe to retry: it was
    assert https_panel.ledger.calls["add"] == 0 and https_panel.ledger.orders == {}


def test_verification_is_on_by_default(https_panel: PanelServer) -> None:
    transport.ca_certificates.cache_clear()
    try:
        assert transport.ca_certificates() != (None, None)  # trusted: the usual authorities, not this CA
        with (
            PanelClient(https_panel.url, KEY, retry=RetryPolicy(attempts=1)) as client,
            pytest.raises(PanelUnavailable, match="TLSError") as down,
        ):
            client.balance()
        assert "certificate" in str(down.value)
    finally:
        transport.ca_certificates.cache_clear()


def test_https_to_a_port_that_speaks_plain_http_is_a_tls_failure_and_nothing_is_sent() -> None:
    sleeps = Sleeps()
    with PanelServer(key=KEY, speed=0) as plain:
        url = plain.url.replace("http://", "https://")
        with (
            PanelClient(url, KEY, sleep=sleeps, retry=RetryPolicy(attempts=2)) as client,
            pytest.raises(PanelUnavailable) as down,
        ):
            add_order(client)
        assert plain.ledger.calls["add"] == 0 and plain.ledger.orders == {}
    assert_not_sent(down.value, "TLSError")
    assert len(sleeps.waits) == 1


# --- before connecting -------------------------------------------------------------


def test_a_name_that_does_not_resolve_is_not_sent_and_is_retried() -> None:
    sleeps = Sleeps()
    with (
        PanelClient(
            "http://panel.invalid/api/v2", KEY, sleep=sleeps, retry=RetryPolicy(attempts=3)
        ) as client,
        pytest.raises(PanelUnavailable) as down,
    ):
        add_order(client)
    assert_not_sent(down.value, "DNSError: Could not resolve host: panel.invalid")
    assert len(sleeps.waits) == 2


@pytest.fixture
def full_listener() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 whose backlog is full: the kernel drops further connection attempts,
    so a connect there waits until its timeout."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    waiting: list[socket.socket] = []
    for _ in range(4):  # fill the queue of connections not yet accepted
        peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        peer.setblocking(False)
        peer.connect_ex(listener.getsockname())
        waiting.append(peer)
    time.sleep(0.05)
    yield listener
    for peer in waiting:
        peer.close()
    listener.close()


def test_a_connect_timeout_is_not_sent(full_listener: socket.socket) -> None:
    sleeps = Sleeps()
    timeout = Timeouts(connect=0.2, read=5.0)
    port = full_listener.getsockname()[1]
    with (
        PanelClient(f"http://127.0.0.1:{port}/api/v2", KEY, sleep=sleeps, timeout=timeout) as client,
        pytest.raises(PanelUnavailable) as down,
    ):
        add_order(client)
    assert_not_sent(down.value, "ConnectTimeout")
    assert len(sleeps.waits) == 4


def test_a_url_that_is_not_http_is_final_and_never_sent() -> None:
    sleeps = Sleeps()
    for url in ("ftp://panel.example/api/v2", "panel.example/api/v2", "http:///api/v2"):
        with (
            PanelClient(url, KEY, sleep=sleeps) as client,
            pytest.raises(PanelUnavailable, match="invalid panel URL") as bad,
        ):
            add_order(client)
        assert not isinstance(bad.value, AmbiguousOrder)
    assert sleeps.waits == []  # retrying cannot fix it


def test_a_closed_client_refuses_to_send(server_url: str) -> None:
    client = PanelClient(server_url, KEY)
    client.balance()
    client.close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.balance()


@pytest.fixture
def server_url() -> Iterator[str]:
    with PanelServer(key=KEY, speed=0) as server:
        yield server.url


# --- dependencies --------------------------------------------------------------------


def _distribution(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement.strip())
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def _declared_closure() -> set[str]:
    """The distributions pyproject.toml depends on, and theirs (extras left out), as installed."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    todo = [_distribution(requirement) for requirement in project["dependencies"]]
    closure: set[str] = set()
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [
            _distribution(r.partition(";")[0]) for r in requirements if "extra" not in r.partition(";")[2]
        ]
    return closure


def test_every_library_the_app_loads_is_a_declared_dependency() -> None:
    code = (
        "import sys, json; before = set(sys.modules); "
        "import sheetorders.app, sheetorders.cli, sheetorders.panel, sheetorders.testing.panel_server; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    owners = importlib.metadata.packages_distributions()
    allowed = _declared_closure() | {"sheetorders"}
    undeclared = {
        module: owners[module]
        for module in loaded
        if module in owners and not {_distribution(d) for d in owners[module]} & allowed
    }
    assert undeclared == {}


def test_a_host_in_any_script_is_sent_as_dns_knows_it() -> None:
    endpoint = transport.Endpoint.of("https://смм.рф/api/v2?x=a b")
    assert endpoint.error == ""
    assert endpoint.url == "https://xn--l1aan.xn--p1ai/api/v2?x=a%20b"
    assert endpoint.shown == endpoint.url
    login = transport.Endpoint.of("https://me:s%40cret@panel.example:8443/api/v2")
    assert login.url == "https://me:s%40cret@panel.example:8443/api/v2"
    assert login.shown == "https://panel.example:8443/api/v2"
