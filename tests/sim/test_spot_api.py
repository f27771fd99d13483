"""Kraken Spot semantics without HTTP: AddOrder parameters, paging, limits, auth rules."""

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from rules_engine.sim.auth import MAX_NONCE, SpotAuth
from rules_engine.paper.errors import ExchangeError
from rules_engine.sim.market import MarketData
from rules_engine.paper.exchange import PaperExchange
from rules_engine.sim.spot_api import SpotApi, parse_add_order

T0 = 1_790_000_000.0


@pytest.fixture
def api():
    exchange = PaperExchange(seed=2)
    market = MarketData(exchange.pairs)
    for pair, price in (("XBTUSD", D("60000")), ("ETHUSD", D("3000"))):
        market.update(pair, price, T0)
        exchange.on_price(pair, price, T0)
    exchange.set_balances("a", {"ZUSD": "1000000", "XXBT": "10"})
    return SpotApi(exchange, market)


def parse(api, **params):
    return parse_add_order({"pair": "XBTUSD", "type": "buy", "volume": "1", **params}, api.exchange, T0)


def test_relative_prices(api):
    assert parse(api, ordertype="limit", price="-100").price == D("59900.0")
    assert parse(api, ordertype="limit", price="#1%").price == D("59400.0")  # a buy limit moves below
    assert parse(api, ordertype="stop-loss", price="#1%").price == D("60600.0")  # a buy stop moves above
    assert parse(api, ordertype="stop-loss-limit", price="+500", price2="+50").price2 == D("60550.0")
    trailing = parse(api, ordertype="trailing-stop", type="sell", price="+2%")
    assert (trailing.trail.amount, trailing.trail.percent, trailing.price) == (D("2"), True, None)
    with pytest.raises(ExchangeError, match="EGeneral:Invalid arguments:price"):
        parse(api, ordertype="trailing-stop", price="-100")


def test_times_flags_and_nested_json_close(api):
    request = parse(api, ordertype="limit", price="50000", starttm="+10", expiretm=str(int(T0) + 60),
                    oflags="post,fciq", close={"ordertype": "take-profit", "price": "70000"})
    assert (request.starttm, request.expiretm) == (T0 + 10, T0 + 60)
    assert request.oflags == frozenset({"post", "fciq"}) and request.close.price == D("70000")
    assert parse(api, ordertype="limit", price="1", oflags=["viqc"]).oflags == frozenset({"viqc"})


def test_deadline_window(api):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "50000"}
    def rfc3339(seconds):
        return datetime.fromtimestamp(T0 + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert api.private("AddOrder", "a", {**order, "deadline": rfc3339(10)}, T0)["txid"]
    with pytest.raises(ExchangeError, match="EService:Deadline elapsed"):
        api.private("AddOrder", "a", {**order, "deadline": rfc3339(-1)}, T0)
    with pytest.raises(ExchangeError, match="EGeneral:Invalid arguments:deadline"):
        api.private("AddOrder", "a", {**order, "deadline": rfc3339(61)}, T0)
    with pytest.raises(ExchangeError, match="EGeneral:Invalid arguments:deadline"):
        api.private("AddOrder", "a", {**order, "deadline": "tomorrow"}, T0)


def test_open_orders_limit_per_pair_and_tier(api):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "50000"}
    api.set_tier("a", "pro")  # 225 per pair, and a trading counter large enough for the adds
    for index in range(225):
        api.private("AddOrder", "a", order, T0 + index)
    with pytest.raises(ExchangeError, match="EOrder:Orders limit exceeded"):
        api.private("AddOrder", "a", order, T0 + 300)
    assert api.private("AddOrder", "a", {**order, "pair": "ETHUSD", "price": "2000"}, T0 + 300)["txid"]


def test_closed_orders_paging_newest_first(api):
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "50000"}
    txids = [api.private("AddOrder", "a", order, T0 + i)["txid"][0] for i in range(55)]
    api.private("CancelAll", "a", {}, T0 + 100)
    for index, txid in enumerate(txids):
        api.exchange.orders[txid].closetm = T0 + 100 + index
    first = api.private("ClosedOrders", "a", {}, T0 + 200)
    assert first["count"] == 55 and list(first["closed"])[:2] == [txids[54], txids[53]] and len(first["closed"]) == 50
    rest = api.private("ClosedOrders", "a", {"ofs": "50"}, T0 + 200)
    assert list(rest["closed"]) == txids[4::-1]
    windowed = api.private("ClosedOrders", "a", {"start": str(T0 + 150), "closetime": "close"}, T0 + 200)
    assert windowed["count"] == 4


def test_trade_balance_in_another_asset_and_assets(api):
    api.exchange.set_balances("b", {"ZUSD": "6000", "XXBT": "0.1"})
    assert api.private("TradeBalance", "b", {"asset": "XBT"}, T0)["eb"] == "0.2000"
    assets = api.public("Assets", {"asset": "XBT,ZUSD"}, T0)
    assert assets["XXBT"]["altname"] == "XBT" and assets["ZUSD"]["decimals"] == 4
    with pytest.raises(ExchangeError, match="EQuery:Unknown asset"):
        api.public("Assets", {"asset": "NOPE"}, T0)


def test_spot_auth_rules():
    auth = SpotAuth(lockout_after=2, lockout_seconds=10)
    auth.add_key("k", "c2VjcmV0")
    common = dict(api_sign="x", uri_path="/0/private/Balance", raw_body="", client="1.2.3.4", now=T0)
    with pytest.raises(ExchangeError, match="EAPI:Invalid nonce"):  # checked before the signature
        auth.authenticate(api_key="k", nonce=str(MAX_NONCE + 1), **common)
    for name in (None, "other"):  # two invalid keys in a row
        with pytest.raises(ExchangeError, match="EAPI:Invalid key"):
            auth.authenticate(api_key=name, nonce="1", **common)
    with pytest.raises(ExchangeError, match="EGeneral:Temporary lockout"):
        auth.authenticate(api_key="k", nonce="1", **common)
    with pytest.raises(ExchangeError, match="EAPI:Invalid signature"):  # lockout over, from this client
        auth.authenticate(api_key="k", nonce="1", **{**common, "now": T0 + 10})
    with pytest.raises(ValueError, match="not valid base64") as caught:
        auth.add_key("bad", "sécret")
    assert "sécret" not in str(caught.value)
