"""Issue 10, findings 6 and 7, over real sockets: header and body timeouts, the connection
limit, rate limits per client address and per source (429 + Retry-After), and a client
that disconnects mid-body. The server is `HttpServer` with small `WebhookLimits`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rules_engine.service.connection_guard import _BUSY
from rules_engine.service.http import HttpServer
from rules_engine.service.signals import SignalSourceConfig
from rules_engine.service.webhook import add_signal_routes
from rules_engine.service.webhook_limits import TokenBuckets, WebhookLimits

pytestmark = pytest.mark.timeout(60)

SECRET = "webhook-hostile-secret"
NOW = 1_718_000_000.0


class World:
    def __init__(self) -> None:
        self.signals: list[Any] = []
        self.rejects: list[tuple[str, Any, dict[str, Any]]] = []
        self.refused: list[str] = []
        self.ids: set[str] = set()

    def on_signal(self, signal: Any) -> None:
        self.signals.append(signal)

    def on_reject(self, source: str, rejected: Any, meta: Any) -> None:
        self.rejects.append((source, rejected, dict(meta)))

    def seen(self, source: str, signal_id: str, now: float, ttl: float) -> bool:
        if signal_id in self.ids:
            return True
        self.ids.add(signal_id)
        return False

    def codes(self) -> list[str]:
        return [rejected.code for _, rejected, _ in self.rejects]


@asynccontextmanager
async def serving(limits: WebhookLimits) -> AsyncIterator[tuple[World, int]]:
    world = World()
    app = web.Application()
    sources = {"bot": SignalSourceConfig(name="bot", secret=SECRET, max_body_bytes=4096)}
    add_signal_routes(app, sources, world.on_signal, world.on_reject, world.seen, clock=lambda: NOW, limits=limits)
    server = HttpServer(app, "127.0.0.1", 0, limits, world.refused.append)
    port = await server.start()
    try:
        yield world, port
    finally:
        await server.stop()


def signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    stamp = str(int(NOW))
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing the connection (fails if it stays open); a reset
    (the server aborts a connection whose bytes it did not read) counts as closed."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        return b""


def test_slowloris_connections_are_cut_after_the_header_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """Finding 6: 200 connections trickling headers were held for 30 s."""
    async def scenario() -> None:
        async with serving(WebhookLimits(header_timeout=0.3, max_client_connections=100)) as (world, port):
            started = time.monotonic()
            connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
            for _, writer in connections:
                writer.write(b"POST /signals/bot HTTP/1.1\r\nHost: x\r\n")  # and never the end of the headers
            for reader, writer in connections:
                writer.write(b"X-Slow: 1\r\n")
                assert await closed_by_server(reader, 5.0) == b""
                writer.close()
            assert time.monotonic() - started < 5.0
            assert world.refused == ["header_timeout"] * 50

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_idle_keep_alive_connection_is_cut_too() -> None:
    async def scenario() -> None:
        async with serving(WebhookLimits(header_timeout=0.3)) as (world, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /signals/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            answer = await closed_by_server(reader, 5.0)
            assert answer.startswith(b"HTTP/1.1 404")
            assert world.refused == ["header_timeout"]
            writer.close()

    asyncio.run(scenario())


def test_a_slow_body_is_cut_at_the_body_timeout_with_a_408() -> None:
    """Finding 6: a 1 byte/s body was never cut."""
    async def scenario() -> None:
        async with serving(WebhookLimits(header_timeout=5.0, body_timeout=0.5)) as (world, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /signals/bot HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            started = time.monotonic()

            async def trickle() -> None:
                for _ in range(100):
                    writer.write(b" ")
                    await asyncio.sleep(0.1)

            sending = asyncio.ensure_future(trickle())
            answer = await asyncio.wait_for(reader.readuntil(b"}"), 5.0)
            assert time.monotonic() - started < 3.0
            assert await closed_by_server(reader, 5.0) == b""  # after at most 1 s of lingering
            sending.cancel()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408")
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "body_timeout"
            [(source, rejected, meta)] = world.rejects
            assert (source, rejected.code, rejected.authenticated) == ("bot", "body_timeout", False)
            assert 1 <= meta["bytes"] < 100

    asyncio.run(scenario())


def test_connections_beyond_the_limit_are_answered_503_and_closed(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with serving(WebhookLimits(max_connections=5)) as (world, port):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answer = await closed_by_server(reader, 5.0)
            assert answer.startswith(b"HTTP/1.1 503")
            head, body = answer.split(b"\r\n\r\n", 1)
            assert f"Content-Length: {len(body)}".encode() in head
            assert json.loads(body) == {"ok": False, "error": "busy", "reason": "too many connections"}
            assert world.refused == ["max_connections"]
            for _ in range(5):  # refused connections that send a request: never handled, nothing logged
                reader, extra = await asyncio.open_connection("127.0.0.1", port)
                extra.write(b"POST /signals/bot HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                assert (await closed_by_server(reader, 5.0)) in (b"", _BUSY)
                extra.close()
            await asyncio.sleep(0.1)
            assert world.refused == ["max_connections"] * 6 and world.rejects == []
            for _, w in [*held, (reader, writer)]:
                w.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_client_is_limited_to_its_burst_then_429_with_retry_after() -> None:
    """Finding 7: 2000 unauthenticated requests in 1.4 s were all served."""
    async def scenario() -> None:
        async with serving(WebhookLimits(client_rate=0.5, client_burst=3)) as (world, port):
            async with aiohttp.ClientSession() as session:
                statuses, retry = [], []
                for _ in range(10):
                    async with session.post(f"http://127.0.0.1:{port}/signals/bot", data=b"{}") as response:
                        statuses.append(response.status)
                        retry.append(response.headers.get("Retry-After"))
                        body = await response.json()
            assert statuses == [401] * 3 + [429] * 7
            assert retry[3:] == ["2"] * 7 and retry[:3] == [None] * 3
            assert body == {"ok": False, "error": "rate_limited",
                            "reason": "too many requests from this client address; retry after 2 s"}
            assert world.codes() == ["missing_signature"] * 3 + ["rate_limited"] * 7

    asyncio.run(scenario())


def test_a_source_is_limited_but_strangers_cannot_spend_its_tokens() -> None:
    async def scenario() -> None:
        limits = WebhookLimits(client_burst=1000, source_rate=0.1, source_burst=2)
        async with serving(limits) as (world, port):
            url = f"http://127.0.0.1:{port}/signals/bot"
            async with aiohttp.ClientSession() as session:
                for _ in range(20):  # strangers: refused, and the source keeps its tokens
                    async with session.post(url, data=b"{}", headers={"X-Signature": "sha256=" + "0" * 64,
                                                                       "X-Timestamp": str(int(NOW))}) as response:
                        assert response.status == 401
                statuses = []
                for n in range(3):
                    body, headers = signed({"id": f"s{n}"})
                    async with session.post(url, data=body, headers=headers) as response:
                        statuses.append((response.status, response.headers.get("Retry-After")))
            assert statuses == [(202, None), (202, None), (429, "10")]
            assert [s.signal_id for s in world.signals] == ["s0", "s1"]

    asyncio.run(scenario())


def test_a_disconnect_mid_body_is_a_clean_counted_refusal(caplog: pytest.LogCaptureFixture) -> None:
    """Finding 6: this logged an ERROR traceback and left no audit record."""
    async def scenario() -> None:
        async with serving(WebhookLimits()) as (world, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /signals/bot HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\": ")
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            deadline = time.monotonic() + 5
            while not world.rejects and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            [(source, rejected, meta)] = world.rejects
            assert (source, rejected.status, rejected.code) == ("bot", 400, "incomplete_body")
            assert rejected.reason == "the connection ended before the whole body arrived"
            assert meta["bytes"] == 6

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_token_buckets_refill_and_forget_full_buckets() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0], max_keys=3)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5
    assert buckets.take("a") == 0.0 and buckets.wait("a") == 0.5
    for key in "bcdefg":
        buckets.take(key)
    assert len(buckets._buckets) <= 4  # bounded however many addresses come by


def test_a_refusal_is_redacted_in_the_answer_as_in_the_audit_copy() -> None:
    """Finding 8: a reason quoting a key of the body must not carry a registered secret."""
    from rules_engine.redact import register_secret

    secret = "webhook-redaction-probe-7f3a9c"
    register_secret(secret)

    async def scenario() -> None:
        async with serving(WebhookLimits()) as (world, port):
            body = f'{{"{secret}": 1, "{secret}": 2}}'.encode()  # refused: "duplicate key '<the key>'"
            _, headers = signed({"id": "x"})
            stamp = headers["X-Timestamp"]
            mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/signals/bot", data=body,
                                        headers={"X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}) as response:
                    answer = await response.json()
            assert (response.status, answer["error"]) == (400, "invalid_json")
            assert secret not in answer["reason"] and "***" in answer["reason"]
            assert secret in world.rejects[0][1].reason  # handed to the audit log, which redacts it the same way

    asyncio.run(scenario())


def test_one_client_address_cannot_hold_every_connection() -> None:
    async def scenario() -> None:
        async with serving(WebhookLimits(max_connections=10, max_client_connections=3)) as (world, port):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await closed_by_server(reader, 5.0)).startswith(b"HTTP/1.1 503")
            assert world.refused == ["max_client_connections"]
            held[0][1].close()
            await asyncio.sleep(0.1)  # the server sees the close
            reader, writer2 = await asyncio.open_connection("127.0.0.1", port)
            writer2.write(b"POST /signals/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 404")
            for _, w in [*held[1:], (None, writer), (None, writer2)]:
                w.close()

    asyncio.run(scenario())


def test_refusals_of_a_stranger_get_one_record_per_interval_carrying_the_count_in_between() -> None:
    from rules_engine.service.reject_audit import RejectionSampler

    now = [0.0]
    sampler = RejectionSampler(interval=60.0, clock=lambda: now[0], max_clients=2)
    assert [sampler.admit("1.2.3.4") for _ in range(4)] == [0, None, None, None]
    assert sampler.admit("5.6.7.8") == 0
    now[0] = 61.0
    assert sampler.admit("1.2.3.4") == 3  # the three only counted since its record at 0 s
    assert sampler.admit("1.2.3.4") is None
    now[0] = 62.0
    assert sampler.admit("5.6.7.8") == 0
    assert sampler.admit("9.9.9.9") == 0  # a third address: the least recently recorded is forgotten
    assert sampler.admit("1.2.3.4") == 0  # (remembered, this would have been only counted)
