"""SpotClient against a scripted transport: wire format, signing, retries, at-most-once orders."""

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from kraken_rest_fakes import API_KEY, SECRET, FakeClock, FakeTransport

from rules_engine.kraken import errors as E
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.signing import spot_signature
from rules_engine.kraken.spot_rest import SpotClient

ENDPOINTS = KrakenEndpoints.local("127.0.0.1", 9)
ORDER = {"descr": {"order": "buy 0.01 XBTUSD @ limit 30000"}, "txid": ["OAAAAA-BBBBB-CCCCCC"]}


def ok(result):
    return {"error": [], "result": result}


def make_client(handler, clock=None, **kwargs):
    clock = clock or FakeClock()
    transport = FakeTransport(handler)
    client = SpotClient(
        Credentials(API_KEY, SECRET),
        ENDPOINTS,
        nonce_source=NonceSource(),
        clock=clock,
        sleep=clock.sleep,
        transport=transport,
        **kwargs,
    )
    return client, transport, clock


def test_private_call_is_signed_as_kraken_documents():
    client, transport, _ = make_client(lambda s: ok({"ZUSD": "10.5"}))
    assert client.balance() == {"ZUSD": "10.5"}
    sent = transport.sent[0]
    assert sent.url == "http://127.0.0.1:9/0/private/Balance" and sent.http_method == "POST"
    nonce = sent.form()["nonce"]
    assert sent.headers["API-Key"] == API_KEY
    assert sent.headers["API-Sign"] == spot_signature(SECRET, "/0/private/Balance", nonce, sent.body)
    assert sent.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_json_bodies_are_signed_over_the_exact_text():
    client, transport, _ = make_client(lambda s: ok(ORDER), body_format="json")
    client.add_order("XBTUSD", "buy", "limit", Decimal("0.01"), price="30000", close_ordertype="limit", close_price="35000")
    sent = transport.sent[0]
    body = json.loads(sent.body)
    assert body["volume"] == "0.01" and body["close"] == {"ordertype": "limit", "price": "35000"}
    assert isinstance(body["nonce"], int)
    assert sent.headers["API-Sign"] == spot_signature(SECRET, "/0/private/AddOrder", body["nonce"], sent.body)
    assert sent.headers["Content-Type"] == "application/json"


def test_nonces_strictly_increase_across_calls():
    client, transport, _ = make_client(lambda s: ok({}))
    for _ in range(5):
        client.balance()
    nonces = [int(s.form()["nonce"]) for s in transport.sent]
    assert nonces == sorted(set(nonces))


def test_add_order_sends_every_parameter_in_kraken_form():
    client, transport, _ = make_client(lambda s: ok(ORDER))
    deadline = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    result = client.add_order(
        "XBTUSD", "buy", "stop-loss-limit", Decimal("1E-2"),
        price="+100", price2=Decimal("30000.0"), trigger="index", leverage="2:1", reduce_only=True,
        stptype="cancel-both", oflags=["post", "fciq"], timeinforce="GTD", starttm="+5", expiretm="+3600",
        close_ordertype="limit", close_price="35000", close_price2="35100", deadline=deadline,
        userref=42, displayvol="0.001", asset_class="tokenized_asset",
    )
    form = transport.sent[0].form()
    assert form == {
        "nonce": form["nonce"], "pair": "XBTUSD", "type": "buy", "ordertype": "stop-loss-limit", "volume": "0.01",
        "displayvol": "0.001", "asset_class": "tokenized_asset", "price": "+100", "price2": "30000.0",
        "trigger": "index", "leverage": "2:1", "reduce_only": "true", "stptype": "cancel-both",
        "oflags": "post,fciq", "timeinforce": "GTD", "starttm": "+5", "expiretm": "+3600",
        "close[ordertype]": "limit", "close[price]": "35000", "close[price2]": "35100",
        "deadline": "2030-01-02T03:04:05.600Z", "userref": "42",
    }
    assert "%2B100" in transport.sent[0].body  # '+' must not arrive as a space
    assert result.txid == ("OAAAAA-BBBBB-CCCCCC",) and not result.recovered and result.cl_ord_id is None


def test_an_order_without_ids_gets_a_client_order_id():
    client, transport, _ = make_client(lambda s: ok(ORDER))
    result = client.add_order("XBTUSD", "sell", "market", "0.5")
    assert len(result.cl_ord_id) == 36 and transport.sent[0].form()["cl_ord_id"] == result.cl_ord_id
    with pytest.raises(ValueError, match="mutually exclusive"):
        client.add_order("XBTUSD", "sell", "market", "0.5", userref=1, cl_ord_id="x")


def test_validate_only():
    client, transport, _ = make_client(lambda s: ok({"descr": {"order": "sell 0.5 XBTUSD @ market"}}))
    result = client.add_order("XBTUSD", "sell", "market", "0.5", validate=True)
    assert transport.sent[0].form()["validate"] == "true"
    assert result.validated_only and result.txid == ()


def test_reads_retry_transient_errors_with_backoff():
    answers = iter([E.ReadTimeout(), {"error": ["EService:Unavailable"]}, ok({"open": {}})])

    def handler(sent):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client, transport, clock = make_client(handler)
    assert client.open_orders() == {"open": {}}
    assert len(transport.sent) == 3 and len(clock.sleeps) == 2
    assert 0 < clock.sleeps[0] <= 0.5 and clock.sleeps[1] > clock.sleeps[0] - 0.25


def test_deterministic_errors_are_not_retried():
    client, transport, _ = make_client(lambda s: {"error": ["EAPI:Invalid key"]})
    with pytest.raises(E.InvalidKey) as caught:
        client.balance()
    assert len(transport.sent) == 1
    assert SECRET not in str(caught.value) and API_KEY not in str(caught.value)


def test_reads_give_up_after_the_policy_attempts():
    client, transport, _ = make_client(lambda s: {"error": ["EService:Busy"]})
    with pytest.raises(E.Busy):
        client.ticker("XBTUSD")
    assert len(transport.sent) == 4
    assert transport.sent[0].http_method == "GET" and transport.sent[0].params == [("pair", "XBTUSD")]


def order_book_handler(place_error, open_orders=None, closed_orders=None, log=None):
    """AddOrder fails with `place_error` once; lookups answer from the given books."""
    state = {"failed": False}

    def handler(sent):
        if log is not None:
            log.append(sent.api_method)
        if sent.api_method == "AddOrder":
            if not state["failed"]:
                state["failed"] = True
                if isinstance(place_error, Exception):
                    raise place_error
                return place_error
            return ok(ORDER)
        if sent.api_method == "OpenOrders":
            return ok({"open": open_orders or {}})
        if sent.api_method == "ClosedOrders":
            return ok({"closed": closed_orders or {}, "count": len(closed_orders or {})})
        raise AssertionError(sent.api_method)

    return handler


def test_ambiguous_failure_then_found_open_returns_the_order_without_resending():
    book = {"OFOUND-11111-AAAAAA": {"cl_ord_id": "dec-1", "descr": {"order": "buy 0.01 XBTUSD @ limit 30000"}}}
    client, transport, clock = make_client(order_book_handler(E.ReadTimeout(), open_orders=book))
    start = clock.now
    result = client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", cl_ord_id="dec-1")
    assert result.recovered and result.txid == ("OFOUND-11111-AAAAAA",)
    assert result.descr == {"order": "buy 0.01 XBTUSD @ limit 30000"}
    assert [s.api_method for s in transport.sent] == ["AddOrder", "OpenOrders"]
    assert transport.sent[1].form()["cl_ord_id"] == "dec-1"
    assert clock.now - start >= 1.0  # waited the settle delay before looking


def test_ambiguous_failure_then_found_closed():
    book = {"OFILLD-11111-AAAAAA": {"cl_ord_id": "dec-2", "status": "closed", "descr": {"order": "x"}}}
    client, transport, _ = make_client(order_book_handler({"error": ["EService:Busy"]}, closed_orders=book))
    result = client.add_order("XBTUSD", "buy", "market", "0.01", cl_ord_id="dec-2")
    assert result.recovered and result.txid == ("OFILLD-11111-AAAAAA",)
    assert [s.api_method for s in transport.sent] == ["AddOrder", "OpenOrders", "ClosedOrders"]


def test_ambiguous_failure_not_found_without_deadline_is_never_resent():
    client, transport, _ = make_client(order_book_handler(E.HTTPStatusError(502)))
    with pytest.raises(E.OrderStateUnknown, match="reconcile"):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", cl_ord_id="dec-3")
    assert [s.api_method for s in transport.sent] == ["AddOrder", "OpenOrders", "ClosedOrders"]


def test_not_found_after_the_deadline_means_not_placed():
    clock = FakeClock()
    deadline = datetime.fromtimestamp(clock.now, timezone.utc) + timedelta(seconds=30)
    client, transport, clock = make_client(order_book_handler(E.ReadTimeout()), clock=clock)
    with pytest.raises(E.OrderNotPlaced):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", cl_ord_id="dec-4", deadline=deadline)
    assert clock.now >= deadline.timestamp()  # looked only once Kraken would have rejected it
    assert [s.api_method for s in transport.sent].count("AddOrder") == 1


def test_ambiguous_failure_without_client_order_id_is_never_resent():
    client, transport, _ = make_client(order_book_handler(E.ReadTimeout()))
    with pytest.raises(E.OrderStateUnknown):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", userref=7)
    assert [s.api_method for s in transport.sent] == ["AddOrder"]


def test_failed_lookup_leaves_the_state_unknown():
    def handler(sent):
        if sent.api_method == "AddOrder":
            raise E.ReadTimeout()
        raise E.ConnectError()

    client, transport, _ = make_client(handler)
    with pytest.raises(E.OrderStateUnknown):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", cl_ord_id="dec-5")
    assert [s.api_method for s in transport.sent].count("AddOrder") == 1


def test_connect_failure_is_resent_without_lookup():
    client, transport, _ = make_client(order_book_handler(E.ConnectError()))
    assert client.add_order("XBTUSD", "buy", "limit", "0.01", price="1", cl_ord_id="d6").txid
    assert [s.api_method for s in transport.sent] == ["AddOrder", "AddOrder"]


def test_rejections_are_raised_at_once():
    client, transport, _ = make_client(lambda s: {"error": ["EOrder:Insufficient funds"]})
    with pytest.raises(E.InsufficientFunds):
        client.add_order("XBTUSD", "buy", "limit", "100", price="30000")
    assert len(transport.sent) == 1


def test_trading_rate_limit_waits_for_the_pair_counter_then_resends():
    client, transport, clock = make_client(order_book_handler({"error": ["EOrder:Rate limit exceeded"]}))
    start = clock.now
    result = client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000")
    assert result.txid and [s.api_method for s in transport.sent] == ["AddOrder", "AddOrder"]
    assert client.limiter.trading_value("XBTUSD") <= 60
    assert clock.now - start >= 1.0  # a full pair counter (starter) needs 1 s to fit one more


def test_rest_rate_limit_backs_off_before_the_next_call():
    answers = iter([{"error": ["EAPI:Rate limit exceeded"]}, ok({"ZUSD": "1"})])
    client, transport, clock = make_client(lambda s: next(answers))
    start = clock.now
    assert client.balance() == {"ZUSD": "1"}
    assert clock.now - start >= 1 / 0.33 - 1e-6  # a full starter REST counter needs ~3 s for one call


def test_cancels_and_dead_man_switch():
    client, transport, _ = make_client(lambda s: ok({"count": 1}))
    client.cancel_order("OAAAAA-BBBBB-CCCCCC")
    client.cancel_order(cl_ord_id="dec-7")
    client.cancel_all()
    client.cancel_all_orders_after(60)
    forms = [(s.api_method, {k: v for k, v in s.form().items() if k != "nonce"}) for s in transport.sent]
    assert forms == [
        ("CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"}),
        ("CancelOrder", {"cl_ord_id": "dec-7"}),
        ("CancelAll", {}),
        ("CancelAllOrdersAfter", {"timeout": "60"}),
    ]
    with pytest.raises(ValueError):
        client.cancel_order()
    with pytest.raises(ValueError):
        client.cancel_all_orders_after(86400)


def test_public_calls_need_no_credentials_and_private_ones_say_so():
    transport = FakeTransport(lambda s: ok({"unixtime": 1, "rfc1123": "x"}))
    client = SpotClient(None, ENDPOINTS, transport=transport)
    assert client.time()["unixtime"] == 1
    assert "API-Key" not in transport.sent[0].headers
    with pytest.raises(E.AuthError, match="no API credentials"):
        client.balance()


def test_client_repr_hides_credentials():
    client, _, _ = make_client(lambda s: ok({}))
    assert SECRET not in repr(client) and API_KEY not in repr(client)
