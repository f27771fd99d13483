import asyncio
import hashlib
import hmac
import json
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rules_engine.service.signals import SignalSourceConfig
from rules_engine.service.webhook import add_signal_routes

SECRET = "webhook-test-secret"
PASS = "tv-pass-for-tests"
NOW = 1_718_000_000.0
SCHEMA = {"type": "object", "required": ["action"], "properties": {"action": {"enum": ["buy", "sell"]}}}


class Recorder:
    def __init__(self, fail=False):
        self.signals, self.rejects, self.seen_ids, self.fail = [], [], set(), fail

    async def on_signal(self, signal):
        if self.fail:
            raise RuntimeError("queue full")
        self.signals.append(signal)

    def on_reject(self, source, rejected, meta):
        self.rejects.append((source, rejected, dict(meta)))

    def seen(self, source, signal_id, now, ttl):
        key = (source, signal_id)
        if key in self.seen_ids:
            return True
        self.seen_ids.add(key)
        return False


@asynccontextmanager
async def client_for(rec, **source_kw):
    sources = {
        "bot": SignalSourceConfig(name="bot", secret=SECRET, schema=SCHEMA, max_body_bytes=1024, **source_kw),
        "tv": SignalSourceConfig(name="tv", passphrase=PASS),
    }
    app = web.Application()
    add_signal_routes(app, sources, rec.on_signal, rec.on_reject, rec.seen, clock=lambda: NOW)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


def signed(body: bytes, ts: float = NOW):
    stamp = str(int(ts))
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}


def run(coro):
    return asyncio.run(coro)


def test_accepted_signal_is_202_and_delivered():
    async def scenario():
        rec = Recorder()
        async with client_for(rec) as client:
            body = b'{"action": "buy", "id": "a1"}'
            resp = await client.post("/signals/bot", data=body, headers=signed(body))
            assert resp.status == 202
            assert await resp.json() == {"ok": True, "signal_id": "a1"}
        assert [(s.source, s.signal_id, s.payload["action"]) for s in rec.signals] == [("bot", "a1", "buy")]
        assert rec.rejects == []

    run(scenario())


def test_sync_on_signal_callback_is_supported():
    async def scenario():
        got = []
        rec = Recorder()
        app = web.Application()
        sources = {"bot": SignalSourceConfig(name="bot", secret=SECRET)}
        add_signal_routes(app, sources, got.append, rec.on_reject, rec.seen, clock=lambda: NOW)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            resp = await client.post("/signals/bot", data=b"{}", headers=signed(b"{}"))
            assert resp.status == 202
        assert len(got) == 1 and got[0].signal_id.startswith("mac:")

    run(scenario())


CASES = [
    ("/signals/nope", b"{}", "signed", 404, "unknown_source"),
    ("/signals/bot", b"x" * 2000, "signed", 413, "body_too_large"),
    ("/signals/bot", b"not json", "signed", 400, "invalid_json"),
    ("/signals/bot", b"[]", "signed", 400, "not_an_object"),
    ("/signals/bot", b'{"action": "buy"}', "none", 401, "missing_signature"),
    ("/signals/bot", b'{"action": "buy"}', "bad", 401, "invalid_signature"),
    ("/signals/bot", b'{"action": "buy"}', "stale", 401, "stale_timestamp"),
    ("/signals/bot", b'{"action": "buy"}', "future", 401, "future_timestamp"),
    ("/signals/bot", b'{"action": "hold"}', "signed", 422, "schema_violation"),
    ("/signals/tv", b'{"passphrase": "wrong"}', "none", 401, "wrong_passphrase"),
]


@pytest.mark.parametrize("path, body, auth, status, code", CASES)
def test_every_rejection_is_answered_with_a_reason_and_reported(path, body, auth, status, code):
    headers = {
        "signed": signed(body),
        "none": {},
        "bad": {**signed(body), "X-Signature": "sha256=" + "ab" * 32},
        "stale": signed(body, NOW - 3600),
        "future": signed(body, NOW + 3600),
    }[auth]

    async def scenario():
        rec = Recorder()
        async with client_for(rec) as client:
            resp = await client.post(path, data=body, headers=headers)
            answer = await resp.json()
        assert resp.status == status
        assert answer["ok"] is False and answer["error"] == code and answer["reason"]
        assert len(rec.rejects) == 1
        source, rejected, meta = rec.rejects[0]
        assert (source, rejected.code, rejected.status) == (path.rsplit("/", 1)[1], code, status)
        assert meta["remote"] == "127.0.0.1"
        assert meta["bytes"] == (len(body) if code != "unknown_source" else 0)
        assert rec.signals == []

    run(scenario())


def test_replay_is_409_and_reported():
    async def scenario():
        rec = Recorder()
        body = b'{"action": "sell", "id": "r1"}'
        async with client_for(rec) as client:
            first = await client.post("/signals/bot", data=body, headers=signed(body))
            second = await client.post("/signals/bot", data=body, headers=signed(body))
            assert (first.status, second.status) == (202, 409)
            assert (await second.json())["error"] == "replayed"
        assert len(rec.signals) == 1
        assert [(r.code, r.signal_id) for _, r, _ in rec.rejects] == [("replayed", "r1")]

    run(scenario())


def test_oversized_body_streamed_without_content_length_is_cut_off():
    async def scenario():
        rec = Recorder()

        async def chunks():
            for _ in range(100):
                yield b"y" * 512

        async with client_for(rec) as client:
            resp = await client.post("/signals/bot", data=chunks(), headers=signed(b""))
            assert resp.status == 413
        _, rejected, meta = rec.rejects[0]
        assert rejected.code == "body_too_large"
        assert 1024 < meta["bytes"] <= 1024 + 8192  # stopped reading at the first chunk past the limit

    run(scenario())


def test_passphrase_signal_over_http_never_reaches_the_engine_with_its_passphrase():
    async def scenario():
        rec = Recorder()
        body = json.dumps({"passphrase": PASS, "ticker": "XBTUSD", "id": "tv-9"})
        async with client_for(rec) as client:
            resp = await client.post("/signals/tv", data=body, headers={"Content-Type": "text/plain"})
            assert resp.status == 202
        assert rec.signals[0].payload == {"ticker": "XBTUSD", "id": "tv-9"}

    run(scenario())


def test_failure_to_queue_is_500_and_reported():
    async def scenario():
        rec = Recorder(fail=True)
        body = b'{"action": "buy"}'
        async with client_for(rec) as client:
            resp = await client.post("/signals/bot", data=body, headers=signed(body))
            assert resp.status == 500
            assert (await resp.json())["error"] == "internal_error"
        assert [r.code for _, r, _ in rec.rejects] == ["internal_error"]

    run(scenario())


def test_other_methods_are_not_routed():
    async def scenario():
        async with client_for(Recorder()) as client:
            resp = await client.get("/signals/bot")
            assert resp.status == 405

    run(scenario())
