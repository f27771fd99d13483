"""Injected faults: failing, delayed and withheld REST answers, forced rate limits, and
dropped, silent or corrupted WebSocket feeds."""

import contextlib
import json

import pytest
import requests
from sim_support import KEY, next_nonce
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "59000"}


def test_fail_next_answers_with_the_error_and_uses_the_nonce(spot, sim):
    sim.faults.fail_next("AddOrder", "EService:Unavailable")
    nonce = next_nonce()
    assert spot.private("AddOrder", LIMIT, nonce=nonce) == {"error": ["EService:Unavailable"]}
    assert sim.exchange.open_orders(KEY) == []
    assert spot.private("AddOrder", LIMIT, nonce=nonce) == {"error": ["EAPI:Invalid nonce"]}
    assert spot.ok("AddOrder", LIMIT)["txid"]
    sim.faults.fail_next("*", "EGeneral:Internal error", count=2)
    assert spot.private("Balance")["error"] == ["EGeneral:Internal error"]
    assert spot.public("Time") == {"error": ["EGeneral:Internal error"]}
    assert spot.public("Time")["error"] == []


def test_http_status_and_delay(spot, sim, endpoints):
    sim.faults.http_status("Balance", 502)
    response = spot.raw("Balance")
    assert response.status_code == 502 and "502 Bad Gateway" in response.text
    assert spot.ok("Balance")["ZUSD"] == "10000.0000"
    sim.faults.delay("Time", 0.3, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(endpoints.spot_rest + "/0/public/Time", timeout=0.05)
    assert spot.public("Time")["error"] == []


def test_timeout_after_accept_places_the_order_but_never_answers(spot, sim):
    sim.faults.timeout_after_accept("AddOrder", delay=0)
    with pytest.raises(requests.exceptions.ConnectionError):
        spot.raw("AddOrder", {**LIMIT, "cl_ord_id": "lost-answer"})
    [order] = sim.exchange.open_orders(KEY)
    assert order.cl_ord_id == "lost-answer"
    # the client can find it again by its cl_ord_id, and a blind retry is refused
    assert len(spot.ok("OpenOrders", {"cl_ord_id": "lost-answer"})["open"]) == 1
    assert spot.private("AddOrder", {**LIMIT, "cl_ord_id": "lost-answer"}) == {"error": ["EOrder:Duplicate order"]}
    sim.faults.timeout_after_accept("AddOrder", delay=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        spot.raw("AddOrder", LIMIT, timeout=0.3)
    assert len(sim.exchange.open_orders(KEY)) == 2  # stopping the simulator releases the held answer


def test_forced_rate_limits(spot, futures, sim):
    sim.faults.force_rate_limit(KEY)
    assert spot.private("AddOrder", LIMIT)["error"] == []  # trading calls use the trading counter
    assert spot.private("Balance") == {"error": ["EAPI:Rate limit exceeded"]}
    assert spot.private("Balance")["error"] == []
    sim.faults.force_rate_limit(KEY, count=2, trading=True)
    assert spot.private("AddOrder", LIMIT) == {"error": ["EOrder:Rate limit exceeded"]}
    assert spot.private("CancelAll")["error"] == []
    assert spot.private("CancelOrder", {"txid": "1"}) == {"error": ["EOrder:Rate limit exceeded"]}
    sim.faults.force_rate_limit(KEY)
    assert futures.call("accounts", post=False)["error"] == "apiLimitExceeded"
    sim.faults.fail_next("sendorder", "Unavailable")
    order = {"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "0.1", "limitPrice": "50000"}
    assert futures.call("sendorder", order)["error"] == "Unavailable"
    assert futures.call("sendorder", order)["sendStatus"]["status"] == "placed"


@contextlib.contextmanager
def subscribed(endpoints):
    with connect(endpoints.ws_v2) as ws:
        ws.recv(timeout=2)
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}))
        ws.recv(timeout=2)  # ack
        ws.recv(timeout=2)  # snapshot
        yield ws


def test_drop_ws_connections(endpoints, sim):
    with subscribed(endpoints) as ws:
        assert sim.faults.drop_ws_connections() == 1
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=2)
        assert closed.value.rcvd is None  # no close frame: an abnormal closure (1006)
    with subscribed(endpoints) as ws:
        sim.faults.drop_ws_connections(code=1011)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=2)
        assert closed.value.rcvd.code == 1011


def test_stop_heartbeats_and_pause_feeds(endpoints, sim):
    with subscribed(endpoints) as ws:
        assert json.loads(ws.recv(timeout=2)) == {"channel": "heartbeat"}
        sim.faults.stop_heartbeats()
        while True:  # drain a heartbeat already queued
            try:
                frame = json.loads(ws.recv(timeout=0.3))
            except TimeoutError:
                break
            assert frame == {"channel": "heartbeat"}
        sim.set_price("XBTUSD", "60001")
        assert json.loads(ws.recv(timeout=2))["type"] == "update"  # ticks still flow
        sim.faults.pause_feeds()
        sim.set_price("XBTUSD", "60002")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        sim.faults.resume_feeds()
        sim.faults.resume_heartbeats()
        assert json.loads(ws.recv(timeout=2)) == {"channel": "heartbeat"}


def test_malformed_frames(endpoints, sim):
    with subscribed(endpoints) as ws:
        sim.faults.stop_heartbeats()
        while True:  # drain heartbeats already queued
            try:
                ws.recv(timeout=0.1)
            except TimeoutError:
                break
        assert sim.faults.send_malformed_frames(2) == 1
        for _ in range(2):
            with pytest.raises(json.JSONDecodeError):
                json.loads(ws.recv(timeout=2))
        sim.faults.send_malformed_frames(1, kind="binary")
        assert isinstance(ws.recv(timeout=2), bytes)
        sim.faults.send_malformed_frames(1, kind="wrong_shape")
        assert json.loads(ws.recv(timeout=2))["data"] == "oops"
    with pytest.raises(ValueError):
        sim.faults.send_malformed_frames(1, kind="nonsense")


def test_websocket_faults_need_a_running_simulator(sim):
    with pytest.raises(RuntimeError):
        sim.faults.drop_ws_connections()
