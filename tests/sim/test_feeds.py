"""WebSocket feeds (v2, v1, Futures) driven with the `websockets` client."""

import json
import time

from websockets.sync.client import connect


def recv_until(ws, predicate, timeout=3.0):
    """The first JSON frame that satisfies `predicate` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if predicate(frame):
            return frame


def is_v2(channel, type_=None):
    return lambda f: isinstance(f, dict) and f.get("channel") == channel and (type_ is None or f.get("type") == type_)


def test_v2_status_subscribe_snapshot_updates_heartbeat_ping(endpoints, sim):
    with connect(endpoints.ws_v2) as ws:
        status = json.loads(ws.recv(timeout=2))
        assert status["channel"] == "status" and status["data"][0]["system"] == "online"
        assert status["data"][0]["api_version"] == "v2"
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "NOPE/USD"]},
                            "req_id": 7}))
        ack, snapshot, error = (recv_until(ws, lambda f: f.get("channel") != "heartbeat") for _ in range(3))
        assert ack["result"] == {"channel": "ticker", "event_trigger": "trades", "snapshot": True, "symbol": "BTC/USD"}
        assert ack["success"] is True and ack["req_id"] == 7 and ack["time_in"].endswith("Z")
        assert error["error"] == "Currency pair not supported NOPE/USD" and error["symbol"] == "NOPE/USD"
        assert error["success"] is False and "result" not in error
        assert (snapshot["channel"], snapshot["type"]) == ("ticker", "snapshot")
        assert snapshot["data"][0]["symbol"] == "BTC/USD" and snapshot["data"][0]["last"] == 60000.0
        assert snapshot["data"][0]["bid"] == 59999.9 and snapshot["data"][0]["ask"] == 60000.1
        sim.set_price("XBTUSD", "60100")
        update = recv_until(ws, is_v2("ticker", "update"))
        assert update["data"][0]["last"] == 60100.0 and update["data"][0]["change"] == 100.0
        assert recv_until(ws, is_v2("heartbeat")) == {"channel": "heartbeat"}
        ws.send(json.dumps({"method": "ping", "req_id": 101}))
        pong = recv_until(ws, lambda f: f.get("method") == "pong")
        assert pong["req_id"] == 101 and "time_out" in pong
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["XBT/USD"]}}))
        legacy = recv_until(ws, lambda f: f.get("success") is False)
        assert legacy["error"] == "Currency pair not supported XBT/USD"
        ws.send(json.dumps({"method": "unsubscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}))
        done = recv_until(ws, lambda f: f.get("method") == "unsubscribe")
        assert done["success"] is True and done["result"]["symbol"] == "BTC/USD"
        sim.set_price("XBTUSD", "60200")
        recv_until(ws, is_v2("heartbeat"))
        ws.send(json.dumps({"method": "ping"}))
        later = recv_until(ws, lambda f: not is_v2("heartbeat")(f))
        assert later["method"] == "pong"  # no ticker update after unsubscribing


def test_v1_system_status_subscription_status_ticker_arrays(endpoints, sim):
    with connect(endpoints.ws_v1) as ws:
        status = json.loads(ws.recv(timeout=2))
        assert status["event"] == "systemStatus" and status["status"] == "online" and "connectionID" in status
        ws.send(json.dumps({"event": "subscribe", "pair": ["XBT/USD", "XBTUSD"], "subscription": {"name": "ticker"},
                            "reqid": 42}))
        not_heartbeat = lambda f: f != {"event": "heartbeat"}  # noqa: E731
        ok, snapshot, bad = (recv_until(ws, not_heartbeat) for _ in range(3))
        assert ok["status"] == "subscribed" and ok["event"] == "subscriptionStatus"
        assert ok["channelName"] == "ticker" and ok["pair"] == "XBT/USD" and ok["reqid"] == 42
        assert bad["status"] == "error" and bad["pair"] == "XBTUSD"
        assert bad["errorMessage"] == "Currency pair not in ISO 4217-A3 format XBTUSD"
        channel_id, payload, name, pair = snapshot
        assert (channel_id, name, pair) == (ok["channelID"], "ticker", "XBT/USD")
        assert set(payload) == set("abcvptlho") and payload["o"] == ["60000.00000", "60000.00000"]
        assert type(payload["a"][1]) is int and len(payload["a"][2].split(".")[1]) == 8 and payload["c"][0] == "60000.00000"
        sim.set_price("XBTUSD", "59000")
        update = recv_until(ws, lambda f: isinstance(f, list))
        assert update[1]["c"][0] == "59000.00000"
        assert recv_until(ws, lambda f: isinstance(f, dict) and f.get("event") == "heartbeat") == {"event": "heartbeat"}
        ws.send(json.dumps({"event": "ping", "reqid": 5}))
        assert recv_until(ws, lambda f: isinstance(f, dict) and f.get("event") == "pong") == {"event": "pong", "reqid": 5}
        ws.send(json.dumps({"event": "subscribe", "pair": ["XBT/FOO"], "subscription": {"name": "ticker"}}))
        unknown = recv_until(ws, lambda f: isinstance(f, dict) and f.get("status") == "error")
        assert unknown["errorMessage"] == "Currency pair not supported XBT/FOO"


def test_futures_info_subscribed_and_flat_tickers(endpoints, sim):
    with connect(endpoints.futures_ws) as ws:
        assert json.loads(ws.recv(timeout=2)) == {"event": "info", "version": 1}
        ws.send(json.dumps({"event": "subscribe", "feed": "ticker", "product_ids": ["PF_XBTUSD"]}))
        assert recv_until(ws, lambda f: f.get("event") == "subscribed") == {
            "event": "subscribed", "feed": "ticker", "product_ids": ["PF_XBTUSD"]}
        ticker = recv_until(ws, lambda f: f.get("feed") == "ticker")
        assert ticker["product_id"] == "PF_XBTUSD" and ticker["markPrice"] == 60000.0 and ticker["tag"] == "perpetual"
        sim.set_price("PF_XBTUSD", "60500")  # a product's price is its underlying spot price
        assert recv_until(ws, lambda f: f.get("feed") == "ticker")["last"] == 60500.0
        ws.send(json.dumps({"event": "subscribe", "feed": "heartbeat"}))
        assert recv_until(ws, lambda f: f.get("event") == "subscribed")["feed"] == "heartbeat"
        assert recv_until(ws, lambda f: f.get("feed") == "heartbeat")["time"] > 0
        ws.send(json.dumps({"event": "subscribe", "feed": "ticker", "product_ids": ["PF_NOPE"]}))
        assert recv_until(ws, lambda f: f.get("event") == "subscribed_failed")["product_ids"] == ["PF_NOPE"]


def test_system_status_change_is_pushed(endpoints, sim):
    with connect(endpoints.ws_v2) as ws:
        json.loads(ws.recv(timeout=2))
        sim.set_system_status("maintenance")
        assert recv_until(ws, is_v2("status"))["data"][0]["system"] == "maintenance"


def test_each_price_move_gets_its_own_update_in_order(endpoints, sim):
    with connect(endpoints.ws_v2) as ws:
        ws.recv(timeout=2)
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}))
        recv_until(ws, is_v2("ticker", "snapshot"))
        for price in ("60001", "60002", "60003"):
            sim.set_price("XBTUSD", price)
        lasts = [recv_until(ws, is_v2("ticker", "update"))["data"][0]["last"] for _ in range(3)]
        assert lasts == [60001.0, 60002.0, 60003.0]
