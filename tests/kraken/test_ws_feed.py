"""TickerFeed against a small local server speaking Kraken's v2, v1 and futures ticker frames.

The server (`FakeKraken`, 127.0.0.1, free port) routes by path exactly as
`KrakenEndpoints.local` does, answers subscribe/unsubscribe/ping requests, sends
heartbeats, and can drop connections, go silent and send malformed frames.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ws_feed import FeedStatus, TickerFeed, backoff_delay
from rules_engine.pairs import default_registry

PATH_PROTOCOL = {"/v2": "v2", "/": "v1", "/ws/v1": "futures"}
EXCHANGE_TIME = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=timezone.utc)
RECEIVED_AT = 1_800_000_000.5  # the injected clock


class Connection:
    def __init__(self, ws, protocol: str):
        self.ws = ws
        self.protocol = protocol
        self.received: list = []
        self.subscribed: set[str] = set()
        self.silent = False


class FakeKraken:
    """Kraken-shaped ticker server. Symbols are tracked in each protocol's wire form."""

    def __init__(self, *, heartbeats: bool = True, reject: tuple[str, ...] = (), answer_pings: bool = True):
        self.heartbeats = heartbeats
        self.answer_pings = answer_pings
        self.reject = set(reject)
        self.connections: list[Connection] = []
        self.drop_on_connect = False

    async def __aenter__(self) -> "FakeKraken":
        self.server = await serve(self._handler, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.endpoints = KrakenEndpoints.local("127.0.0.1", port)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def live(self) -> Connection:
        return self.connections[-1]

    async def _handler(self, ws) -> None:
        conn = Connection(ws, PATH_PROTOCOL[ws.request.path])
        self.connections.append(conn)
        if self.drop_on_connect:
            ws.transport.abort()
            return
        await ws.send(self._banner(conn.protocol))
        beat = asyncio.ensure_future(self._beat(conn))
        try:
            async for raw in ws:
                if conn.silent:
                    continue
                message = json.loads(raw)
                conn.received.append(message)
                for reply in self._answer(conn, message):
                    await ws.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()

    async def _beat(self, conn: Connection) -> None:
        frame = {"v2": '{"channel":"heartbeat"}', "v1": '{"event":"heartbeat"}', "futures": None}[conn.protocol]
        while True:
            await asyncio.sleep(0.03)
            if conn.protocol == "futures":
                frame = '{"feed":"heartbeat","time":1534262350627}' if "heartbeat" in conn.subscribed else None
            if self.heartbeats and not conn.silent and frame:
                await conn.ws.send(frame)

    @staticmethod
    def _banner(protocol: str) -> str:
        return {
            "v2": json.dumps(
                {"channel": "status", "type": "update", "data": [{"version": "2.0.10", "system": "online"}]}
            ),
            "v1": '{"connectionID":1,"event":"systemStatus","status":"online","version":"1.9.1"}',
            "futures": '{"event":"info","version":1}',
        }[protocol]

    def _answer(self, conn: Connection, msg: dict) -> list[dict]:
        if msg.get("method") == "ping" or msg.get("event") == "ping":
            if not self.answer_pings:
                return []
            if conn.protocol == "v2":
                return [{"method": "pong", "req_id": msg.get("req_id")}]
            return [{"event": "pong", "reqid": msg.get("reqid")}]
        if conn.protocol == "futures" and msg.get("feed") == "heartbeat":
            conn.subscribed.add("heartbeat")
            return [{"event": "subscribed", "feed": "heartbeat"}]
        subscribing = msg.get("method", msg.get("event")) == "subscribe"
        if conn.protocol == "v2":
            wanted = msg["params"]["symbol"]
        else:
            wanted = msg["pair"] if conn.protocol == "v1" else msg["product_ids"]
        good = [name for name in wanted if name not in self.reject]
        bad = [name for name in wanted if name in self.reject]
        for name in good:
            (conn.subscribed.add if subscribing else conn.subscribed.discard)(name)
        return getattr(self, f"_{conn.protocol}_acks")(msg, subscribing, good, bad)

    @staticmethod
    def _v2_acks(msg: dict, subscribing: bool, good: list[str], bad: list[str]) -> list[dict]:
        method = msg["method"]
        return [{"method": method, "result": {"channel": "ticker", "symbol": s}, "success": True} for s in good] + [
            {"error": f"Currency pair not supported {s}", "method": method, "success": False, "symbol": s} for s in bad
        ]

    @staticmethod
    def _v1_acks(msg: dict, subscribing: bool, good: list[str], bad: list[str]) -> list[dict]:
        status = "subscribed" if subscribing else "unsubscribed"
        base = {"channelName": "ticker", "event": "subscriptionStatus"}
        return [{**base, "pair": p, "status": status} for p in good] + [
            {**base, "pair": p, "status": "error", "errorMessage": f"Currency pair not supported {p}"} for p in bad
        ]

    @staticmethod
    def _futures_acks(msg: dict, subscribing: bool, good: list[str], bad: list[str]) -> list[dict]:
        replies = []
        if good:
            event = "subscribed" if subscribing else "unsubscribed"
            replies.append({"event": event, "feed": "ticker", "product_ids": good})
        if bad:
            replies.append(
                {"event": "subscribed_failed", "feed": "ticker", "product_ids": bad, "message": "Invalid product id"}
            )
        return replies

    def ticker(self, protocol: str, symbol: str, last: str) -> str:
        if protocol == "v2":
            stamp = EXCHANGE_TIME.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            entry = f'{{"symbol":"{symbol}","bid":{last},"ask":{last},"last":{last},"timestamp":"{stamp}"}}'
            return f'{{"channel":"ticker","type":"update","data":[{entry}]}}'
        if protocol == "v1":
            return json.dumps([42, {"a": [last, 1, "1"], "b": [last, 1, "1"], "c": [last, "0.1"]}, "ticker", symbol])
        ms = int(EXCHANGE_TIME.timestamp() * 1000)
        return f'{{"feed":"ticker","product_id":"{symbol}","time":{ms},"bid":{last},"ask":{last},"last":{last}}}'

    async def push(self, symbol: str, last: str) -> None:
        """Send a ticker frame for `symbol` on the live connection if it is subscribed there."""
        conn = self.live
        if symbol in conn.subscribed:
            await conn.ws.send(self.ticker(conn.protocol, symbol, last))

    async def send_raw(self, text: str) -> None:
        await self.live.ws.send(text)


async def until(condition, timeout: float = 3.0) -> None:
    """Wait for `condition()` to hold (polling the event loop), or fail the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class Recorder:
    def __init__(self):
        self.ticks = []
        self.statuses: list[FeedStatus] = []

    def kinds(self) -> list[str]:
        return [s.kind for s in self.statuses]


def make_feed(server: FakeKraken, protocol: str, symbols, rec: Recorder, **kw) -> TickerFeed:
    kw.setdefault("heartbeat_timeout", 0.3)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.02)
    return TickerFeed(
        server.endpoints,
        protocol,
        symbols,
        rec.ticks.append,
        on_status=rec.statuses.append,
        clock=lambda: RECEIVED_AT,
        rng=random.Random(1),
        **kw,
    )


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def running(feed: TickerFeed):
    return asyncio.ensure_future(feed.run())


async def finish(feed: TickerFeed, task) -> None:
    feed.stop()
    await asyncio.wait_for(task, 5)
    assert feed.stats.connected is False


# Wire name of XBTUSD per protocol, and the symbol the ticks carry.
CASES = [("v2", "BTC/USD", "XBTUSD"), ("v1", "XBT/USD", "XBTUSD"), ("futures", "PF_XBTUSD", "PF_XBTUSD")]


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_ticks_arrive_with_receive_and_exchange_time(protocol, wire, symbol):
    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.subscribed)
            await server.push(wire, "50000.5")
            await until(lambda: rec.ticks)
            tick = rec.ticks[0]
            price = Decimal("50000.5")
            assert (tick.symbol, tick.last, tick.bid, tick.ask) == (symbol, price, price, price)
            assert tick.market == ("futures" if protocol == "futures" else "spot")
            assert tick.time == RECEIVED_AT
            assert tick.exchange_time == (None if protocol == "v1" else EXCHANGE_TIME.timestamp())
            assert feed.stats.ticks == 1 and feed.stats.last_tick_at == RECEIVED_AT
            assert feed.stats.system == ("online" if protocol != "futures" else None)
            assert rec.kinds()[0] == "connected"
            assert [s.symbol for s in rec.statuses if s.kind == "subscribed"] == [symbol]
            await finish(feed, task)
    run(scenario())


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_drop_reconnects_and_resubscribes(protocol, wire, symbol):
    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.subscribed)
            server.live.ws.transport.abort()
            await until(lambda: len(server.connections) == 2 and wire in server.live.subscribed)
            await until(lambda: symbol in feed.stats.subscribed)
            await server.push(wire, "1.25")
            await until(lambda: rec.ticks)
            assert rec.ticks[0].last == Decimal("1.25")
            assert (feed.stats.connects, feed.stats.reconnects) == (2, 1)
            assert "disconnected" in rec.kinds() and "reconnecting" in rec.kinds()
            if protocol == "futures":  # the heartbeat feed is asked for again too
                assert {"event": "subscribe", "feed": "heartbeat"} in server.live.received
            await finish(feed, task)
    run(scenario())


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_silent_feed_is_declared_dead_and_replaced(protocol, wire, symbol):
    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.subscribed)
            server.live.silent = True  # no heartbeats, no pongs, no acks
            await until(lambda: len(server.connections) == 2 and wire in server.live.subscribed)
            assert feed.stats.silences == 1
            assert "silent" in rec.kinds()
            await server.push(wire, "2")
            await until(lambda: rec.ticks)
            await finish(feed, task)
    run(scenario())


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_subscribed_feed_without_heartbeats_is_dead_even_if_pings_would_be_answered(protocol, wire, symbol):
    async def scenario():
        async with FakeKraken(heartbeats=False) as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: feed.stats.silences >= 1 and len(server.connections) >= 2)
            assert not any("ping" in json.dumps(m) for c in server.connections for m in c.received)
            await finish(feed, task)
    run(scenario())


@pytest.mark.parametrize("protocol", ["v2", "v1"])
def test_idle_feed_without_heartbeats_is_kept_alive_by_pings(protocol):
    async def scenario():
        async with FakeKraken(heartbeats=False) as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [], rec, heartbeat_timeout=0.2)
            task = await running(feed)
            await until(lambda: feed.stats.heartbeats >= 3)  # pongs: the server sends nothing else
            assert sum("ping" in json.dumps(m) for m in server.live.received) >= 3
            assert feed.stats.silences == 0 and len(server.connections) == 1
            await finish(feed, task)
    run(scenario())


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_malformed_frames_are_counted_reported_and_skipped(protocol, wire, symbol):
    garbage = [
        "not json",
        '{"channel":"ticker","data":[{"symbol":"BTC/USD","last":"abc"}]}',
        "[1,2,3]",
        '{"feed":"ticker","product_id":"PF_XBTUSD","last":-1}',
    ]

    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.subscribed)
            for text in garbage:
                await server.send_raw(text)
            await server.push(wire, "3.5")
            await until(lambda: rec.ticks)
            assert [t.last for t in rec.ticks] == [Decimal("3.5")]
            assert feed.stats.malformed == len(garbage)
            assert rec.kinds().count("malformed") == len(garbage)
            assert "not json" in [s for s in rec.statuses if s.kind == "malformed"][0].detail
            assert feed.stats.connects == 1  # never fatal
            await finish(feed, task)
    run(scenario())


SECOND = {"v2": ("ETH/USD", "ETHUSD"), "v1": ("ETH/USD", "ETHUSD"), "futures": ("PF_ETHUSD", "PF_ETHUSD")}


@pytest.mark.parametrize("protocol, wire, symbol", CASES)
def test_set_symbols_changes_subscriptions_on_the_live_connection(protocol, wire, symbol):
    wire2, symbol2 = SECOND[protocol]

    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.subscribed)
            await feed.set_symbols([symbol2])
            await until(lambda: server.live.subscribed == {wire2} | ({"heartbeat"} if protocol == "futures" else set()))
            await until(lambda: feed.stats.subscribed == {symbol2})
            assert feed.symbols == {symbol2}
            assert len(server.connections) == 1
            # a tick for the dropped symbol still in flight is not delivered
            await server.live.ws.send(server.ticker(protocol, wire, "9"))
            await server.push(wire2, "7")
            await until(lambda: rec.ticks)
            assert [(t.symbol, t.last) for t in rec.ticks] == [(symbol2, Decimal("7"))]
            with pytest.raises(ValueError):
                await feed.set_symbols(["NOPE" if protocol != "futures" else "PF NOPE"])
            assert feed.symbols == {symbol2}  # a bad name changes nothing
            await finish(feed, task)
    run(scenario())


REJECTED = [("v2", "DOGE/USD", "XDGUSD"), ("v1", "XDG/USD", "XDGUSD"), ("futures", "PF_NOPE", "PF_NOPE")]


@pytest.mark.parametrize("protocol, wire, symbol", REJECTED)
def test_rejected_symbol_is_reported_and_not_retried_after_reconnect(protocol, wire, symbol):
    _, good_wire, good = next(case for case in CASES if case[0] == protocol)

    async def scenario():
        async with FakeKraken(reject=(wire,)) as server:
            rec = Recorder()
            feed = make_feed(server, protocol, [symbol, good], rec)
            task = await running(feed)
            await until(lambda: symbol in feed.stats.rejected and good in feed.stats.subscribed)
            assert "not supported" in feed.stats.rejected[symbol] or "Invalid product id" in feed.stats.rejected[symbol]
            rejected = [s for s in rec.statuses if s.kind == "rejected"]
            assert [s.symbol for s in rejected] == [symbol]
            server.live.ws.transport.abort()
            await until(lambda: len(server.connections) == 2 and good in feed.stats.subscribed)
            asked = json.dumps(server.live.received)
            assert good_wire in asked and wire not in asked
            # dropping it and asking again tries again
            await feed.set_symbols([good])
            assert symbol not in feed.stats.rejected
            await feed.set_symbols([good, symbol])
            await until(lambda: wire in json.dumps(server.live.received))
            await finish(feed, task)
    run(scenario())


class UpperBound(random.Random):
    """Jitter that always picks the cap, so delays are predictable."""

    def uniform(self, a, b):
        return b


def test_backoff_delay_is_capped_full_jitter():
    assert [backoff_delay(n, 0.5, 4.0, UpperBound()) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    delays = [backoff_delay(3, 0.5, 30.0, rng) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays) and min(delays) < 1.0 and max(delays) > 3.0
    assert backoff_delay(10_000, 0.5, 30.0, UpperBound()) == 30.0


def test_backoff_grows_while_failing_and_resets_after_a_healthy_connection():
    async def scenario():
        async with FakeKraken() as server:
            server.drop_on_connect = True  # every connection dies at once
            delays: list[float] = []

            def on_status(status: FeedStatus) -> None:
                if status.kind == "reconnecting":
                    delays.append(float(status.detail.split()[1]))

            options = dict(on_status=on_status, backoff_base=0.01, backoff_max=0.04, rng=UpperBound())
            feed = TickerFeed(server.endpoints, "v2", ["XBTUSD"], healthy_after=60, **options)
            task = await running(feed)
            await until(lambda: len(delays) >= 5)
            await finish(feed, task)
            assert delays[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
            assert feed.stats.reconnects >= 4

            delays.clear()
            healthy = TickerFeed(server.endpoints, "v2", ["XBTUSD"], healthy_after=0, **options)
            task = await running(healthy)
            await until(lambda: len(delays) >= 3)
            await finish(healthy, task)
            assert delays[:3] == [0.01, 0.01, 0.01]
    run(scenario())


def test_unreachable_endpoint_counts_failures_and_stop_interrupts_backoff():
    async def scenario():
        async with FakeKraken() as server:
            endpoints = server.endpoints
        # the server is gone: nothing listens on that port any more
        rec = Recorder()
        options = dict(on_status=rec.statuses.append, backoff_base=0.01, backoff_max=60, rng=UpperBound())
        feed = TickerFeed(endpoints, "v2", ["XBTUSD"], **options)
        task = await running(feed)
        await until(lambda: feed.stats.connect_failures >= 3)
        assert feed.stats.connects == 0 and not feed.stats.connected
        assert "connect failed" in [s for s in rec.statuses if s.kind == "disconnected"][0].detail
        await finish(feed, task)  # returns promptly even while waiting out a backoff
    run(scenario())


def test_callback_errors_are_counted_not_fatal():
    async def scenario():
        async with FakeKraken() as server:
            seen = []

            def on_tick(tick):
                seen.append(tick)
                raise RuntimeError("engine bug")

            feed = TickerFeed(server.endpoints, "v2", ["XBTUSD"], on_tick, heartbeat_timeout=0.3)
            task = await running(feed)
            await until(lambda: "XBTUSD" in feed.stats.subscribed)
            await server.push("BTC/USD", "1")
            await server.push("BTC/USD", "2")
            await until(lambda: len(seen) == 2)
            assert feed.stats.callback_errors == 2 and feed.stats.connects == 1
            await finish(feed, task)
    run(scenario())


def test_stats_snapshot_is_json_ready():
    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, "v2", ["XBTUSD", "ETHUSD"], rec)
            task = await running(feed)
            await until(lambda: len(feed.stats.subscribed) == 2)
            snapshot = feed.stats.as_dict()
            assert json.loads(json.dumps(snapshot))["subscribed"] == ["ETHUSD", "XBTUSD"]
            assert snapshot["connected"] is True and snapshot["protocol"] == "v2"
            await finish(feed, task)
    run(scenario())


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown Kraken spot pair"):
        TickerFeed(KrakenEndpoints(), "v2", ["NOPEUSD"])
    with pytest.raises(ValueError, match="list of names"):
        TickerFeed(KrakenEndpoints(), "v2", "XBTUSD")
    with pytest.raises(ValueError, match="protocol"):
        TickerFeed(KrakenEndpoints(), "v3", [])
    with pytest.raises(ValueError, match="bad v2 WebSocket URL"):
        TickerFeed(KrakenEndpoints(ws_v2="http://example.com/v2"), "v2", [])
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        TickerFeed(KrakenEndpoints(), "v2", [], heartbeat_timeout=0)
    feed = TickerFeed(KrakenEndpoints(), "v1", ["xbt/usd", "BTC/USD", "XXBTZUSD"], registry=default_registry())
    assert feed.symbols == {"XBTUSD"} and feed.url == "wss://ws.kraken.com"


# --- end to end against the Kraken simulator (rules_engine.sim) --------------------------

SIM_NOW = 1_790_000_000.5


async def _sim_scenario(sim, endpoints: KrakenEndpoints, protocol: str, symbol: str) -> None:
    rec = Recorder()
    feed = TickerFeed(
        endpoints,
        protocol,
        [symbol],
        rec.ticks.append,
        on_status=rec.statuses.append,
        heartbeat_timeout=0.3,
        backoff_base=0.01,
        backoff_max=0.02,
        clock=lambda: RECEIVED_AT,
    )
    task = await running(feed)

    async def price_arrives(price: str) -> None:
        await asyncio.to_thread(sim.set_price, "XBTUSD", price)
        await until(lambda: any(t.last == Decimal(price) for t in rec.ticks))

    await until(lambda: symbol in feed.stats.subscribed)
    await price_arrives("61000.0")
    tick = rec.ticks[-1]
    assert (tick.symbol, tick.time) == (symbol, RECEIVED_AT)
    assert tick.exchange_time == (None if protocol == "v1" else SIM_NOW)
    assert tick.bid < tick.ask

    for kind in ("truncated", "garbage", "binary", "wrong_shape"):
        await asyncio.to_thread(sim.faults.send_malformed_frames, 1, kind)
    await until(lambda: feed.stats.malformed == 4)
    await price_arrives("61500.0")
    assert feed.stats.connects == 1

    await asyncio.to_thread(sim.faults.drop_ws_connections)
    await until(lambda: feed.stats.reconnects == 1 and symbol in feed.stats.subscribed)
    await price_arrives("62000.0")

    sim.faults.stop_heartbeats()
    await until(lambda: feed.stats.silences >= 1)
    sim.faults.resume_heartbeats()
    await until(lambda: feed.stats.connected and symbol in feed.stats.subscribed)
    await price_arrives("63000.0")
    assert feed.stats.reconnects >= 2

    if protocol != "futures":
        await asyncio.to_thread(sim.set_system_status, "maintenance")
        await until(lambda: feed.stats.system == "maintenance")
        second = "ETHUSD"
        await feed.set_symbols([symbol, second])
        await until(lambda: second in feed.stats.subscribed)
        await asyncio.to_thread(sim.set_price, second, "3100.00")
        await until(lambda: any(t.symbol == second and t.last == Decimal("3100.00") for t in rec.ticks))
    await finish(feed, task)


@pytest.mark.parametrize("protocol, symbol", [("v2", "XBTUSD"), ("v1", "XBTUSD"), ("futures", "PF_XBTUSD")])
def test_end_to_end_against_the_simulator(protocol, symbol):
    from rules_engine.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(tick_interval=0, heartbeat_interval=0.05), clock=lambda: SIM_NOW)
    with sim.running() as endpoints:
        run(_sim_scenario(sim, endpoints, protocol, symbol))


def test_simulator_rejects_an_unknown_futures_product_once():
    from rules_engine.sim import SimConfig, Simulator

    async def scenario(endpoints):
        rec = Recorder()
        symbols = ["PF_XBTUSD", "PF_NOPEUSD"]
        feed = TickerFeed(endpoints, "futures", symbols, on_status=rec.statuses.append, heartbeat_timeout=0.3)
        task = await running(feed)
        await until(lambda: "PF_NOPEUSD" in feed.stats.rejected and "PF_XBTUSD" in feed.stats.subscribed)
        assert [s.symbol for s in rec.statuses if s.kind == "rejected"] == ["PF_NOPEUSD"]
        await finish(feed, task)

    sim = Simulator(SimConfig(tick_interval=0, heartbeat_interval=0.05))
    with sim.running() as endpoints:
        run(scenario(endpoints))


def test_an_unexpected_error_in_a_session_is_logged_and_the_feed_reconnects():
    async def scenario():
        async with FakeKraken() as server:
            rec = Recorder()
            feed = make_feed(server, "v2", ["XBTUSD"], rec)
            calls = []

            def connect_requests():
                calls.append(1)
                if len(calls) == 1:
                    raise RuntimeError("bug in a dialect")
                return []

            feed.dialect.connect_requests = connect_requests
            task = await running(feed)
            await until(lambda: "XBTUSD" in feed.stats.subscribed)
            assert feed.stats.connects == 2
            assert "RuntimeError: bug in a dialect" in [s.detail for s in rec.statuses if s.kind == "disconnected"]
            await finish(feed, task)
    run(scenario())
