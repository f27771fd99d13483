"""Fakes for the Kraken REST client tests: a manual clock and a scripted transport."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

SECRET = base64.b64encode(b"unit-test secret bytes, never real").decode()
API_KEY = "unit-test-api-key"


class FakeClock:
    """Time that only moves when someone sleeps on it (thread-safe, never goes back)."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)


@dataclass
class Sent:
    http_method: str
    url: str
    api_method: str
    params: Any
    body: str | None
    headers: dict[str, str]

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body or "", keep_blank_values=True))


@dataclass
class FakeTransport:
    """Answers each request with `handler(sent)`: a JSON body, or raises a TransportError."""

    handler: Callable[[Sent], Any]
    sent: list[Sent] = field(default_factory=list)

    def request(self, http_method, url, *, api_method, params=None, body=None, headers=None):
        sent = Sent(http_method, url, api_method, params, body, dict(headers or {}))
        self.sent.append(sent)
        return self.handler(sent)
