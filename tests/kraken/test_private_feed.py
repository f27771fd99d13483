"""Private WebSocket v2 messages as the core's events."""

from decimal import Decimal

from rules_engine.core.events import BalanceUpdate, OrderUpdate
from rules_engine.kraken.private_feed import parse_private

NOW = 1_790_000_000.0


def test_execution_entries_become_order_updates():
    message = {"channel": "executions", "type": "update", "sequence": 4, "data": [
        {"order_id": "OABC12-DEF34-GHI567", "cl_ord_id": "rule-1", "symbol": "BTC/USD", "side": "buy",
         "order_type": "limit", "order_qty": Decimal("0.01"), "limit_price": Decimal("69000"),
         "order_status": "filled", "exec_type": "trade", "cum_qty": Decimal("0.01"),
         "avg_price": Decimal("69000.0"), "timestamp": "2026-09-22T10:00:00.500000Z"},
        {"order_id": "OXYZ", "symbol": "XMR/USD", "order_status": "new", "exec_type": "new",
         "order_qty": Decimal("1"), "limit_price": Decimal("150"), "cum_qty": Decimal("0")},
    ]}
    first, second = parse_private(message, NOW)
    assert first == OrderUpdate(time=1790071200.5, status="filled", txid="OABC12-DEF34-GHI567", cl_ord_id="rule-1",
                                pair="XBTUSD", volume=Decimal("0.01"), filled=Decimal("0.01"), price=Decimal("69000.0"))
    assert (second.pair, second.status, second.price, second.time) == ("XMRUSD", "new", Decimal("150"), NOW)


def test_balances_snapshot_and_update():
    snapshot = {"channel": "balances", "type": "snapshot", "data": [
        {"asset": "BTC", "balance": Decimal("1.5")}, {"asset": "USD", "balance": Decimal("100")}]}
    assert parse_private(snapshot, NOW) == [
        BalanceUpdate({"BTC": Decimal("1.5"), "USD": Decimal("100")}, NOW, snapshot=True)]
    update = {"channel": "balances", "type": "update", "data": [
        {"asset": "BTC", "amount": Decimal("0.01"), "balance": Decimal("1.51"), "timestamp": "2026-09-22T10:00:01Z"}]}
    assert parse_private(update, NOW) == [BalanceUpdate({"BTC": Decimal("1.51")}, 1790071201.0, snapshot=False)]


def test_other_messages_give_nothing():
    for message in ({"channel": "heartbeat"}, {"method": "subscribe", "success": True}, [1, 2], "x",
                    {"channel": "executions", "data": "oops"}):
        assert parse_private(message, NOW) == []


def test_the_feed_against_the_simulator_reconnects_with_a_fresh_token():
    import asyncio
    import base64

    from rules_engine.kraken.credentials import Credentials
    from rules_engine.kraken.private_feed import PrivateFeed
    from rules_engine.kraken.spot_rest import SpotClient
    from rules_engine.sim import Account, SimConfig, Simulator

    secret = base64.b64encode(bytes(range(64))).decode()
    sim = Simulator(SimConfig(accounts=[Account("feed-key", secret, {"ZUSD": "10000"})], prices={"XBTUSD": "60000"},
                              tick_interval=0, heartbeat_interval=0.1))

    async def run():
        endpoints = await sim.start("127.0.0.1", 0)
        client = SpotClient(Credentials("feed-key", secret), endpoints)
        tokens: list[str] = []

        def token() -> str:
            tokens.append(client.get_websockets_token()["token"])
            steps.append("token")
            return tokens[-1]

        async def budget() -> None:  # a worker's budget of connection attempts (service.connect_budget)
            steps.append("budget")

        received: list = []
        feed = PrivateFeed(endpoints.ws_auth_v2, token, received.extend, clock=sim.clock, backoff_base=0.01,
                           before_connect=budget)
        task = asyncio.ensure_future(feed.run())
        try:
            async with asyncio.timeout(10):
                while not feed.up:
                    await asyncio.sleep(0.01)
                assert await asyncio.to_thread(sim.faults.drop_ws_connections) == 1  # the exchange drops it
                while not (feed.up and feed.connections == 2):
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(client.add_order, "XBTUSD", "buy", "limit", "0.01", price="59000")
                while not any(isinstance(e, OrderUpdate) and e.status == "new" for e in received):
                    await asyncio.sleep(0.01)
        finally:
            await feed.stop()
            await asyncio.wait_for(task, 5)
            await sim.stop()
        return tokens, received, feed

    steps: list[str] = []
    tokens, received, feed = asyncio.run(run())
    assert len(tokens) == 2 and tokens[0] != tokens[1] and not feed.up
    assert steps == ["budget", "token", "budget", "token"]  # every attempt, the reconnect too, asks first
    snapshots = [e for e in received if isinstance(e, BalanceUpdate) and e.snapshot]
    assert len(snapshots) == 2 and snapshots[0].balances == {"USD": Decimal("10000")}
    new = next(e for e in received if isinstance(e, OrderUpdate) and e.status == "new")
    assert (new.pair, new.volume, new.price) == ("XBTUSD", Decimal("0.01"), Decimal("59000"))


def test_the_environment_is_read_for_proxies_once_per_url(monkeypatch):
    """websockets reads the environment's proxy settings at each connect (a walk of every
    variable: a worker's environment holds every cell's credentials); the feeds of a process
    read them once per URL, and use what websockets itself would have found."""
    import asyncio

    import websockets.asyncio.client as ws_client
    from websockets.proxy import get_proxy

    from rules_engine.kraken import private_feed

    lookups: list[str] = []

    def counted(uri):  # type: ignore[no-untyped-def]
        lookups.append(uri.host)
        return get_proxy(uri)

    monkeypatch.setattr(ws_client, "get_proxy", counted)  # websockets' own look-up at a connect
    monkeypatch.setattr(private_feed, "get_proxy", counted, raising=False)
    monkeypatch.setattr(private_feed, "_PROXIES", {}, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")

    async def connect_three_times() -> int:
        from websockets.asyncio.server import serve

        from rules_engine.kraken.private_feed import PrivateFeed

        async def subscribed_then_closed(ws):  # type: ignore[no-untyped-def]
            await ws.recv()
            await ws.send('{"method": "subscribe", "success": true, "result": {"channel": "executions"}}')

        async with serve(subscribed_then_closed, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            feed = PrivateFeed(f"ws://127.0.0.1:{port}/v2", lambda: "token", lambda events: None,
                               clock=lambda: 0.0, backoff_base=0.001, backoff_max=0.01)
            task = asyncio.ensure_future(feed.run())
            async with asyncio.timeout(10):  # three sessions: three cells' feeds to one URL, or reconnects
                while feed.connections < 3:
                    await asyncio.sleep(0.01)
            await feed.stop()
            await asyncio.wait_for(task, 5)
        return feed.connections

    assert asyncio.run(connect_three_times()) >= 3
    assert lookups == ["127.0.0.1"]
    assert private_feed.ws_proxy("wss://ws-auth.kraken.com/v2") == "http://proxy.invalid:3128"
    assert lookups == ["127.0.0.1", "ws-auth.kraken.com"]
