"""ccxt's `kraken` (unmodified) against the simulator: markets, ticker, order book, trades,
orders (create, edit via AmendOrder, cancel one and a batch) and ccxt's exception mapping."""

from decimal import Decimal

import ccxt
import pytest
from compat_support import KEY, SECRET


def client(base, **extra):
    exchange = ccxt.kraken({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, **extra})
    exchange.urls["api"] = {**exchange.urls["api"], "public": base, "private": base}
    return exchange


@pytest.fixture(scope="module")
def kraken(endpoints):
    exchange = client(endpoints.spot_rest)
    exchange.load_markets()
    return exchange


def test_markets_are_kraken_s_full_list(kraken):
    assert len([m for m in kraken.markets.values() if m["spot"]]) == 1434
    market = kraken.market("ETH/USDT")
    assert market["id"] == "ETHUSDT" and market["precision"]["price"] == 0.01


def test_ticker_order_book_and_trades(kraken, sim):
    ticker = kraken.fetch_ticker("BTC/USD")
    assert ticker["last"] == 60010.0 and ticker["bid"] == 60009.9 and ticker["ask"] == 60010.1
    assert ticker["info"]["c"][0] == "60010.00000"  # Kraken's formatting: cost_decimals for XBTUSD
    book = kraken.fetch_order_book("BTC/USD", limit=5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] == ticker["bid"] and book["asks"][0][0] == ticker["ask"]
    # REST tickers carry the top sizes with 3 decimals (Kraken's "1.000"); the book has lot_decimals
    assert abs(book["bids"][0][1] - ticker["bidVolume"]) < 0.0005 < book["bids"][0][1]
    assert abs(book["asks"][0][1] - ticker["askVolume"]) < 0.0005 < book["asks"][0][1]
    assert [level[0] for level in book["asks"]] == sorted(level[0] for level in book["asks"])
    trades = kraken.fetch_trades("BTC/USD")
    assert [(t["price"], t["amount"]) for t in trades][-2:] == [(60000.0, 0.25), (60010.0, 0.1)]
    assert trades[-1]["side"] == "buy"


def test_orders_rest_in_the_book_are_amended_and_cancelled(kraken, sim):
    first = kraken.create_order("BTC/USD", "limit", "buy", 0.01, 59000)
    second = kraken.create_order("BTC/USD", "limit", "buy", 0.02, 58000)
    book = kraken.fetch_order_book("BTC/USD", limit=500)
    bids = {level[0]: level[1] for level in book["bids"]}
    assert (bids[59000.0], bids[58000.0]) == (0.01, 0.02)  # the resting orders are on the book
    edited = kraken.edit_order(first["id"], "BTC/USD", "limit", "buy", 0.015, 59100)
    assert edited["info"]["amend_id"].startswith("T")  # AmendOrder answers an amend id; the txid stays
    with sim.lock:
        order = sim.exchange.orders[first["id"]]
        assert (order.volume, order.price, order.status) == (Decimal("0.015"), 59100, "open")
    kraken.cancel_orders([first["id"], second["id"]])
    with sim.lock:
        assert {sim.exchange.orders[o["id"]].status for o in (first, second)} == {"canceled"}
    assert kraken.fetch_open_orders("BTC/USD") == []


def test_exception_mapping(kraken, sim, endpoints):
    with pytest.raises(ccxt.InsufficientFunds):
        kraken.create_order("BTC/USD", "limit", "buy", 100, 59000)
    with pytest.raises(ccxt.OrderNotFound):
        kraken.cancel_order("OAAAAA-BBBBB-CCCCCC")
    with pytest.raises(ccxt.BadSymbol):
        kraken.fetch_ticker("NOPE/USD")
    with pytest.raises(ccxt.BadSymbol):  # the exchange's own answer, EQuery:Unknown asset
        kraken.publicGetAssets({"asset": "NOPE"})
    stale = client(endpoints.spot_rest)
    stale.markets, stale.markets_by_id = kraken.markets, kraken.markets_by_id
    stale.nonce = lambda: 1  # far below what the key has used
    with pytest.raises(ccxt.InvalidNonce):
        stale.fetch_balance()
    sim.faults.force_rate_limit(KEY)
    with pytest.raises(ccxt.DDoSProtection, match="EAPI:Rate limit exceeded"):  # ccxt's class for it
        kraken.fetch_balance()
    sim.faults.force_rate_limit(KEY, trading=True)
    with pytest.raises(ccxt.DDoSProtection, match="EOrder:Rate limit exceeded"):
        kraken.create_order("BTC/USD", "limit", "buy", 0.01, 59000)
    assert kraken.fetch_balance()["USD"]["total"] == 100000.0


def test_over_https_with_the_simulator_s_certificate(tls_endpoints, certificate):
    assert tls_endpoints.spot_rest.startswith("https://")
    exchange = client(tls_endpoints.spot_rest, requests_trust_env=True)  # reads REQUESTS_CA_BUNDLE
    assert exchange.fetch_ticker("BTC/USD")["last"] == 60010.0
    assert exchange.fetch_balance()["BTC"]["total"] == 2.0
