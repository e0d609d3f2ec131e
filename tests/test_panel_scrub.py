"""The API key is blanked out of whatever the panel echoes back, however it is written there:
HTML-escaped, percent-encoded, JSON-escaped or in another letter case."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterator
from urllib.parse import unquote

import pytest

from sheetorders.errors import PanelError
from sheetorders.panel import PanelClient, RetryPolicy
from sheetorders.testing.clients import SECRET_KEY as KEY
from sheetorders.testing.panel_server import PanelServer

AMP_KEY = "sk&SECRET&9f8e7d6c5b4a"


def every_char(key: str, form: Callable[[str], str]) -> str:
    return "".join(form(c) for c in key)


def forms(key: str) -> dict[str, str]:
    return {
        "decimal entity": key.replace("-", "&#45;"),
        "hex entity": key.replace("-", "&#x2d;"),
        "upper hex entity": key.replace("-", "&#X2D;"),
        "padded entity": key.replace("-", "&#00045;"),
        "all entities": every_char(key, lambda c: f"&#{ord(c)};"),
        "double escaped": key.replace("-", "&amp;#45;"),
        "percent": key.replace("-", "%2D"),
        "lower percent": key.replace("-", "%2d"),
        "all percent": every_char(key, lambda c: f"%{ord(c):02x}"),
        "percent entity": key.replace("-", "%26%2345%3B"),
        "json escape": key.replace("-", "\\u002d"),
        "upper case": key.upper(),
        "lower case": key.lower(),
        "swapped case": key.swapcase(),
        "mixed": key.upper().replace("-", "%2d").replace("E", "&#x45;"),
    }


def decoded(text: str) -> str:
    """`text` with every encoding undone a few times over, for checking (lower case)."""
    for _ in range(3):
        text = html.unescape(unquote(text)).replace("\\u002d", "-").replace("\\u002D", "-")
    return text.lower()


def no_key_in(text: str, key: str) -> None:
    assert key.lower() not in decoded(text), text


@pytest.fixture
def client(server: PanelServer) -> Iterator[PanelClient]:
    with PanelClient(server.url, KEY, name="test", sleep=lambda _: None, retry=RetryPolicy(attempts=1)) as c:
        yield c


@pytest.mark.parametrize("form", list(forms(KEY)))
def test_an_echoed_key_is_blanked_out_of_refusals_snippets_and_ambiguous_orders(
    server: PanelServer, client: PanelClient, form: str
) -> None:
    echoed = forms(KEY)[form]
    assert echoed != KEY
    errors: list[PanelError] = []
    server.faults.queue_reply({"error": f"Invalid API key {echoed}"}, actions={"balance"})
    server.faults.queue_reply(
        f"<html><p>Blocked: key={echoed}&amp;x=1</p></html>", status=403, actions={"balance"}
    )
    server.faults.queue_reply(f"<html>{echoed}</html>", actions={"add"})
    server.faults.queue_reply({"order": echoed}, actions={"add"})
    server.faults.queue_reply(f'{{"order": "{echoed}"}}', status=400, actions={"add"})  # raw JSON text
    for step in (
        client.balance,
        client.balance,
        lambda: client.add("2", {"link": "https://x.com", "quantity": 100}),
    ):
        with pytest.raises(PanelError) as caught:
            step()
        errors.append(caught.value)
    for _ in range(2):
        with pytest.raises(PanelError) as caught:
            client.add("2", {"link": "https://x.com", "quantity": 100})
        errors.append(caught.value)
    for error in errors:
        no_key_in(str(error), KEY)
        no_key_in(getattr(error, "snippet", ""), KEY)
        assert "***" in str(error)


@pytest.mark.parametrize("form", ["escaped ampersand", "all entities", "all percent", "upper case"])
def test_a_key_with_an_ampersand_is_blanked_out_too(form: str) -> None:
    echoed = AMP_KEY.replace("&", "&amp;") if form == "escaped ampersand" else forms(AMP_KEY)[form]
    with (
        PanelServer(key=AMP_KEY, speed=0) as panel,
        PanelClient(panel.url, AMP_KEY, sleep=lambda _: None) as client,
    ):
        panel.faults.queue_reply({"error": f"Invalid API key {echoed}"})
        with pytest.raises(PanelError) as caught:
            client.balance()
    no_key_in(str(caught.value), AMP_KEY)
    assert "***" in str(caught.value)


def test_text_around_the_key_is_kept(server: PanelServer, client: PanelClient) -> None:
    echoed = KEY.upper().replace("-", "&#45;")
    server.faults.queue_reply({"error": f"Key &lt;{echoed}&gt; is not valid &amp; was logged"})
    with pytest.raises(PanelError) as caught:
        client.balance()
    assert caught.value.message == "Key &lt;***&gt; is not valid &amp; was logged"


def test_a_long_page_is_scrubbed_quickly_and_the_snippet_stays_short(
    server: PanelServer, client: PanelClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page = "<html>" + f"&nbsp;{KEY.replace('-', '%2D')} &amp; " * 20000 + "</html>"
    server.faults.queue_reply(page, status=503)
    with pytest.raises(PanelError) as caught:
        client.balance()
    snippet = getattr(caught.value, "snippet", "")
    assert 0 < len(snippet) <= 120
    no_key_in(snippet, KEY)
    assert KEY.lower() not in decoded(caplog.text)
