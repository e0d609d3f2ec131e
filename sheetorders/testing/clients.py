"""What tests of the panel client share: a key that looks like a secret (so that a leak of it
shows), a sleep that records its waits instead of waiting, and one ordinary order."""

from __future__ import annotations

from sheetorders.panel import PanelClient

SECRET_KEY = "sk-SECRET-9f8e7d6c5b4a3210"


class Sleeps:
    """Stands in for time.sleep: records the waits without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def add_order(client: PanelClient, link: str = "https://x.com/a", quantity: int = 100) -> str:
    """An order of the local panel's service 2 for `link`."""
    return client.add("2", {"link": link, "quantity": quantity})
