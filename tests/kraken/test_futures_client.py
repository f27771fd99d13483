"""FuturesClient against a scripted transport: signing, envelopes, sendStatus, recovery."""

from urllib.parse import urlencode

import pytest
from kraken_rest_fakes import API_KEY, SECRET, FakeClock, FakeTransport

from rules_engine.kraken import errors as E
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.kraken.futures_rest import FuturesClient
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.signing import futures_signature

PLACED = {"result": "success", "sendStatus": {"order_id": "179f9af8", "status": "placed"}, "serverTime": "t"}


def make_client(handler, endpoints=KrakenEndpoints.local("127.0.0.1", 9)):
    clock = FakeClock()
    transport = FakeTransport(handler)
    client = FuturesClient(
        Credentials(API_KEY, SECRET),
        endpoints,
        nonce_source=NonceSource(unit_ns=1_000_000),
        clock=clock,
        sleep=clock.sleep,
        transport=transport,
    )
    return client, transport, clock


@pytest.mark.parametrize("endpoints", [KRAKEN, KrakenEndpoints.local("127.0.0.1", 9)])
def test_post_is_signed_over_the_body_and_the_api_path(endpoints):
    client, transport, _ = make_client(lambda s: PLACED, endpoints)
    result = client.send_order("lmt", "PI_XBTUSD", "buy", 1, limit_price="9400", cli_ord_id="c1", reduce_only=False)
    sent = transport.sent[0]
    assert sent.url == endpoints.futures_rest + "/api/v3/sendorder"
    assert sent.body == urlencode(sorted(  # every body lists its parameters in one canonical (sorted) order
        {"orderType": "lmt", "symbol": "PI_XBTUSD", "side": "buy", "size": "1", "limitPrice": "9400",
         "cliOrdId": "c1", "reduceOnly": "false"}.items()
    ))
    nonce = sent.headers["Nonce"]
    assert len(nonce) == 13  # milliseconds, as Kraken suggests
    assert sent.headers["APIKey"] == API_KEY
    assert sent.headers["Authent"] == futures_signature(SECRET, "/api/v3/sendorder", nonce, sent.body)
    assert result.order_id == "179f9af8" and result.status == "placed" and not result.recovered


def test_get_is_signed_over_the_query_string():
    client, transport, _ = make_client(lambda s: {"result": "success", "accounts": {"cash": {}}})
    assert client.accounts() == {"cash": {}}
    sent = transport.sent[0]
    assert sent.http_method == "GET" and sent.body is None
    assert sent.headers["Authent"] == futures_signature(SECRET, "/api/v3/accounts", sent.headers["Nonce"], "")


def test_rejected_order_in_send_status_raises_the_typed_error():
    body = {"result": "success", "sendStatus": {"order_id": "x", "status": "insufficientAvailableFunds"}}
    client, transport, _ = make_client(lambda s: body)
    with pytest.raises(E.InsufficientFunds):
        client.send_order("mkt", "PF_XBTUSD", "buy", 1000)
    assert len(transport.sent) == 1


def test_error_envelope_raises_and_reads_retry_rate_limits():
    answers = iter([{"result": "error", "error": "apiLimitExceeded"}, {"result": "success", "openPositions": []}])
    client, transport, clock = make_client(lambda s: next(answers))
    assert client.open_positions() == []
    assert len(transport.sent) == 2 and clock.sleeps
    client, _, _ = make_client(lambda s: {"result": "error", "error": "authenticationError"})
    with pytest.raises(E.AuthError):
        client.accounts()


def test_ambiguous_send_is_recovered_from_open_orders():
    def handler(sent):
        if sent.api_method == "sendorder":
            raise E.ReadTimeout()
        return {"result": "success", "openOrders": [{"order_id": "abc", "cliOrdId": "c9", "status": "untouched"}]}

    client, transport, _ = make_client(handler)
    result = client.send_order("lmt", "PI_XBTUSD", "buy", 1, limit_price="9400", cli_ord_id="c9")
    assert result.recovered and result.order_id == "abc"
    assert [s.api_method for s in transport.sent] == ["sendorder", "openorders"]


def test_cancels():
    answers = {
        "cancelorder": {"result": "success", "cancelStatus": {"status": "notFound"}},
        "cancelallorders": {"result": "success", "cancelStatus": {"status": "cancelled", "cancelledOrders": []}},
        "cancelallordersafter": {"result": "success", "status": {"currentTime": "a", "triggerTime": "b"}},
    }
    client, transport, _ = make_client(lambda s: answers[s.api_method])
    with pytest.raises(E.UnknownOrder):
        client.cancel_order("nope")
    assert client.cancel_all_orders("PF_XBTUSD")["status"] == "cancelled"
    assert client.cancel_all_orders_after(60) == {"currentTime": "a", "triggerTime": "b"}
    assert transport.sent[-1].body == "timeout=60"


def test_tickers_are_public():
    transport = FakeTransport(lambda s: {"result": "success", "tickers": [{"symbol": "PI_XBTUSD"}]})
    client = FuturesClient(None, transport=transport)
    assert client.tickers() == [{"symbol": "PI_XBTUSD"}]
    assert transport.sent[0].url == "https://futures.kraken.com/derivatives/api/v3/tickers"
    assert "APIKey" not in transport.sent[0].headers
