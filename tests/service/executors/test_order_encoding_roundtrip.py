"""One encoding of an order, end to end: what the simulator receives over HTTP is byte for
byte what the audit log's `request` record says was sent (form and JSON bodies, Spot and
Futures), and the simulator decodes it back into the order the intent stood for."""

import json
from decimal import Decimal as D
from urllib.parse import parse_qsl

import pytest
from executor_fixtures import CREDS, futures_client
from executor_fixtures import audit, clock, sim, store  # noqa: F401  (pytest fixtures)

from rules_engine.core import intents as it
from rules_engine.execution import Dispatcher, DryRunExecutor, LiveExecutor, PaperExecutor, ValidateExecutor
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.order_codec import add_order_of, decode_add_order, decode_send_order, send_order_of
from rules_engine.kraken.params import form_body, json_body
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.sim import PaperExchange


def place(n: int, **kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.10"), price=D("1E+1"))
    fields.update(kw)
    return it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", cl_ord_id=f"enc-{n}", **fields)


SPOT_ORDERS = [
    place(1),
    place(2, volume=D("0.010"), price="-5%", oflags=("post",), timeinforce="GTD", expiretm="+3600",
          close_ordertype="take-profit", close_price=D("70000.0")),
    place(3, side="sell", ordertype="stop-loss", volume=D("1E-2"), price=D("50000.50"), reduce_only=True),
    place(4, side="sell", ordertype="take-profit-limit", volume=D("0.01"), price="+5%", price2="+6%",
          timeinforce="IOC"),
]
FUTURES_ORDERS = [
    it.FuturesSendOrder(intent_id="f#1/0", rule_id="f", decision_id="f#1", cli_ord_id="fenc-1", symbol="PF_XBTUSD",
                        side="buy", order_type="lmt", size=D("0.10"), limit_price=D("7E+4")),
    it.FuturesSendOrder(intent_id="f#2/0", rule_id="f", decision_id="f#2", cli_ord_id="fenc-2", symbol="PF_XBTUSD",
                        side="sell", order_type="stp", size=D("0.010"), stop_price=D("40000.0"),
                        trigger_signal="mark", reduce_only=True),
]


def capture_bodies(sim) -> dict[str, list[str]]:
    """The raw bodies the simulator authenticates, as received over HTTP, by path."""
    received: dict[str, list[str]] = {}
    spot_auth, futures_auth = sim.spot_auth.authenticate, sim.futures_auth.authenticate

    def spot(**kw):
        received.setdefault(kw["uri_path"], []).append(kw["raw_body"])
        return spot_auth(**kw)

    def futures(**kw):
        kw["post_data"] = list(kw["post_data"])
        received.setdefault(kw["endpoint_path"], []).append(kw["post_data"][0])  # query + body, as sent
        return futures_auth(**kw)

    sim.spot_auth.authenticate = spot
    sim.futures_auth.authenticate = futures
    return received


def requests_audited(audit, kind: str) -> dict[str, dict]:
    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    return {r["data"]["cl_ord_id"]: r["data"]["request"] for r in records
            if r["kind"] == "request" and r["data"]["kind"] == kind}


@pytest.mark.parametrize("body_format", ["form", "json"])
def test_live_orders_reach_the_exchange_exactly_as_audited(sim, clock, store, audit, body_format):
    received = capture_bodies(sim)
    spot = SpotClient(CREDS, sim.test_endpoints, nonce_source=NonceSource(), timeout=(2.0, 2.0), clock=clock,
                      sleep=clock.sleep, body_format=body_format)
    dispatcher = Dispatcher(LiveExecutor(spot, futures_client(sim, clock), clock=clock), store, audit, mode="live",
                            clock=clock)
    for intent in [*SPOT_ORDERS, *FUTURES_ORDERS]:
        assert dispatcher.dispatch(intent).result.ok

    audited = requests_audited(audit, "place_order")
    bodies = received["/0/private/AddOrder"]
    assert len(bodies) == len(SPOT_ORDERS)
    for intent, raw in zip(SPOT_ORDERS, bodies, strict=True):
        request = audited[intent.cl_ord_id]
        assert (request["method"], request["path"]) == ("AddOrder", "/0/private/AddOrder")
        params = request["params"]
        if body_format == "json":
            sent = json.loads(raw, parse_float=D)
            assert raw == json_body({"nonce": sent["nonce"], **params})  # byte for byte
        else:
            sent = dict(parse_qsl(raw, keep_blank_values=True))
            assert raw == form_body({"nonce": int(sent["nonce"]), **params})  # byte for byte
        # What the simulator decodes is the order the intent stood for, digits included.
        assert decode_add_order(sent) == add_order_of(intent, deadline=params["deadline"])
    first = json.loads(bodies[0]) if body_format == "json" else dict(parse_qsl(bodies[0]))
    assert (first["volume"], first["price"]) == ("0.10", "10")  # Decimal("0.10"), Decimal("1E+1")

    audited = requests_audited(audit, "futures_send_order")
    bodies = received["/derivatives/api/v3/sendorder"]
    assert len(bodies) == len(FUTURES_ORDERS)
    for intent, raw in zip(FUTURES_ORDERS, bodies, strict=True):
        params = audited[intent.cli_ord_id]["params"]
        assert raw == form_body(params)  # the nonce travels in a header
        sent = decode_send_order(dict(parse_qsl(raw, keep_blank_values=True)))
        assert sent == send_order_of(intent, process_before=params["processBefore"])
    assert "size=0.10&" in bodies[0] and "limitPrice=70000&" in bodies[0]


def test_validate_mode_sends_what_it_audits(sim, clock, store, audit):
    received = capture_bodies(sim)
    spot = SpotClient(CREDS, sim.test_endpoints, nonce_source=NonceSource(), clock=clock, sleep=clock.sleep)
    dispatcher = Dispatcher(ValidateExecutor(spot), store, audit, mode="validate", clock=clock)
    assert dispatcher.dispatch(SPOT_ORDERS[1]).result.ok
    (raw,) = received["/0/private/AddOrder"]
    params = requests_audited(audit, "place_order")["enc-2"]["params"]
    assert params["validate"] is True
    assert raw == form_body({"nonce": int(dict(parse_qsl(raw))["nonce"]), **params})


def test_dry_run_places_the_order_its_audited_request_describes(tmp_path, store, audit, clock):
    exchange = PaperExchange()
    exchange.set_balances("paper", {"USD": "100000", "XBT": "1"})
    exchange.note_price("XBTUSD", D("60000"))
    dispatcher = Dispatcher(DryRunExecutor(PaperExecutor(exchange), store), store, audit, mode="dry-run",
                            clock=clock)
    for intent in SPOT_ORDERS:
        report = dispatcher.dispatch(intent)
        assert report.result.ok, report.result
    audited = requests_audited(audit, "place_order")
    for intent in SPOT_ORDERS:
        order = next(o for o in exchange.orders.values() if o.cl_ord_id == intent.cl_ord_id)
        decoded = decode_add_order(audited[intent.cl_ord_id]["params"])
        assert decoded == add_order_of(intent)
        assert order.volume == intent.volume and str(order.volume) == str(decoded.volume)
