"""The private WebSocket v2 (`/auth/v2`): tokens, executions and balances, and the trading
methods, spoken by a bare WebSocket client."""

import json

from sim_support import KEY, SpotClient
from websockets.sync.client import connect


def receive_until(ws, matches, limit=50):
    for _ in range(limit):
        message = json.loads(ws.recv(timeout=5))
        if matches(message):
            return message
    raise AssertionError("no matching message")


def token(endpoints):
    return SpotClient(endpoints.spot_rest).ok("GetWebSocketsToken")["token"]


def test_a_bad_token_is_refused_and_the_socket_stays_open(endpoints):
    with connect(endpoints.ws_auth_v2) as ws:
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": "nope"}, "req_id": 1}))
        answer = receive_until(ws, lambda m: m.get("method") == "subscribe")
        assert (answer["success"], answer["error"], answer["req_id"]) == (False, "EAPI:Invalid token", 1)
        ws.send(json.dumps({"method": "ping", "req_id": 2}))
        assert receive_until(ws, lambda m: m.get("method") == "pong")["req_id"] == 2


def test_orders_placed_amended_and_cancelled_over_the_socket_stream_executions(endpoints, sim):
    rest = SpotClient(endpoints.spot_rest)
    with connect(endpoints.ws_auth_v2) as ws:
        auth = token(endpoints)
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": auth}}))
        receive_until(ws, lambda m: m.get("type") == "snapshot")
        ws.send(json.dumps({"method": "add_order", "req_id": 3, "params": {
            "order_type": "limit", "side": "buy", "order_qty": 0.01, "limit_price": 59000, "symbol": "BTC/USD",
            "cl_ord_id": "ws-1", "post_only": True, "token": auth}}))
        ack = receive_until(ws, lambda m: m.get("method") == "add_order")
        assert ack["success"] and ack["result"]["cl_ord_id"] == "ws-1"
        order_id = ack["result"]["order_id"]
        new = receive_until(ws, lambda m: m.get("channel") == "executions" and m["type"] == "update")
        assert [e["exec_type"] for e in new["data"]] == ["pending_new", "new"]
        assert new["data"][1]["limit_price"] == 59000.0 and new["data"][1]["cl_ord_id"] == "ws-1"
        rest.ok("AmendOrder", {"txid": order_id, "limit_price": "59100"})
        amended = receive_until(ws, lambda m: m.get("channel") == "executions")
        assert amended["data"][0]["exec_type"] == "amended" and amended["data"][0]["limit_price"] == 59100.0
        ws.send(json.dumps({"method": "cancel_order", "params": {"cl_ord_id": ["ws-1"], "token": auth}}))
        assert receive_until(ws, lambda m: m.get("method") == "cancel_order")["success"] is True
        canceled = receive_until(ws, lambda m: m.get("channel") == "executions")
        assert canceled["data"][0]["exec_type"] == "canceled" and canceled["data"][0]["reason"] == "User requested"
        assert canceled["sequence"] == amended["sequence"] + 1
        ws.send(json.dumps({"method": "cancel_order", "params": {"order_id": [order_id], "token": auth}}))
        refused = receive_until(ws, lambda m: m.get("method") == "cancel_order")
        assert (refused["success"], refused["error"]) == (False, "EOrder:Unknown order")
        ws.send(json.dumps({"method": "add_order", "params": {
            "order_type": "limit", "side": "buy", "order_qty": 1000, "limit_price": 59000, "symbol": "BTC/USD",
            "token": auth}}))
        assert receive_until(ws, lambda m: m.get("method") == "add_order")["error"] == "EOrder:Insufficient funds"
        ws.send(json.dumps({"method": "cancel_all_orders_after", "params": {"timeout": 60, "token": auth}}))
        armed = receive_until(ws, lambda m: m.get("method") == "cancel_all_orders_after")
        assert armed["success"] and armed["result"]["triggerTime"] != "0"
    assert sim.exchange.dead_man_trigger(KEY) is not None


def test_balances_follow_fills_made_over_rest(endpoints, sim):
    with connect(endpoints.ws_auth_v2) as ws:
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "balances", "token": token(endpoints)}}))
        snapshot = receive_until(ws, lambda m: m.get("type") == "snapshot")
        assert {e["asset"]: e["balance"] for e in snapshot["data"]} == {"BTC": 1.0, "USD": 10000.0}
        SpotClient(endpoints.spot_rest).ok("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "market",
                                                        "volume": "0.5"})
        update = receive_until(ws, lambda m: m.get("type") == "update")
        changes = {e["asset"]: (e["amount"], e["balance"], e["type"]) for e in update["data"]}
        assert changes["BTC"] == (-0.5, 0.5, "trade") and changes["USD"][1] > 10000


def test_cancel_order_answers_carry_the_kraken_order_id_one_per_cancelled_order(endpoints):
    """Kraken's cancel_order response: `result.order_id` ("Kraken identifier of the cancelled order"),
    `cl_ord_id` when the order has one, one response per cancelled order."""
    with connect(endpoints.ws_auth_v2) as ws:
        auth = token(endpoints)
        placed = []
        for extra in ({"cl_ord_id": "by-client"}, {"order_userref": 77}, {"order_userref": 77}):
            ws.send(json.dumps({"method": "add_order", "params": {
                "order_type": "limit", "side": "buy", "order_qty": 0.01, "limit_price": 50000, "symbol": "BTC/USD",
                "token": auth, **extra}}))
            placed.append(receive_until(ws, lambda m: m.get("method") == "add_order")["result"]["order_id"])
        by_client = {"cl_ord_id": ["by-client"], "token": auth}
        ws.send(json.dumps({"method": "cancel_order", "req_id": 5, "params": by_client}))
        answer = receive_until(ws, lambda m: m.get("method") == "cancel_order")
        assert answer["result"] == {"order_id": placed[0], "cl_ord_id": "by-client"} and answer["req_id"] == 5
        ws.send(json.dumps({"method": "cancel_order", "params": {"order_userref": [77], "token": auth}}))
        answers = [receive_until(ws, lambda m: m.get("method") == "cancel_order") for _ in range(2)]
        assert sorted(a["result"]["order_id"] for a in answers) == sorted(placed[1:])
        assert all(a["success"] for a in answers)


def test_a_client_gone_during_the_handshake_is_let_go_without_an_error(endpoints, monkeypatch, caplog):
    """A client killed as it connects (a worker SIGKILLed at a takeover): the handshake's
    answer cannot be written; the simulator lets the connection go without an error record
    (aiohttp logged "Error handling request" with a traceback for each) and serves the next."""
    import pytest
    from aiohttp import web
    from aiohttp.client_exceptions import ClientConnectionResetError
    from websockets.exceptions import InvalidStatus

    async def reset(self, request):
        raise ClientConnectionResetError("Cannot write to closing transport")

    monkeypatch.setattr(web.WebSocketResponse, "prepare", reset)
    for url in (endpoints.ws_auth_v2, endpoints.ws_v2):
        with pytest.raises(InvalidStatus):
            connect(url, open_timeout=5).close()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    monkeypatch.undo()
    with connect(endpoints.ws_auth_v2) as ws:
        ws.send(json.dumps({"method": "ping", "req_id": 1}))
        assert receive_until(ws, lambda m: m.get("method") == "pong")["req_id"] == 1
