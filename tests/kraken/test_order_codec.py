"""The one encoding of an order: intents -> Kraken's exact parameters and bodies, and back."""

import json
from decimal import Decimal as D
from urllib.parse import parse_qsl

import pytest

from rules_engine.core import intents as it
from rules_engine.kraken.order_codec import (
    AddOrder,
    BadParameter,
    SendOrder,
    add_order_of,
    decode_add_order,
    decode_send_order,
    encode_add_order,
    encode_send_order,
    intent_request,
    send_order_of,
)
from rules_engine.kraken.params import form_body, json_body
from rules_engine.kraken.signing import spot_signature

OFFICIAL_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="

TRICKY_SPOT = [
    AddOrder("XBTUSD", "buy", "limit", D("0.10"), price=D("1E+1"), cl_ord_id="a"),
    AddOrder("XBTUSD", "sell", "stop-loss-limit", D("1E-2"), price="-5%", price2="#10", trigger="last",
             reduce_only=True, stptype="cancel-both", oflags=("post", "fciq"), timeinforce="GTD",
             starttm="+5", expiretm="+3600", displayvol=D("0.0010"), close_ordertype="take-profit-limit",
             close_price=D("70000.0"), close_price2="+1.5%", deadline="2030-01-02T03:04:05.600Z",
             cl_ord_id="6d1b345e-2821-40e2-ad83-4ecb18a06876"),
    AddOrder("XBTUSD", "buy", "trailing-stop", D("2"), price="+5%", reduce_only=False, validate=True, userref=42,
             asset_class="tokenized_asset", leverage="none"),
    AddOrder("XBTUSD", "buy", "market", D("1.000")),
]
TRICKY_FUTURES = [
    SendOrder("lmt", "PF_XBTUSD", "buy", D("0.10"), limit_price=D("1E+4"), cli_ord_id="c1", reduce_only=True),
    SendOrder("stp", "PF_XBTUSD", "sell", D("1E+1"), limit_price=D("49999.50"), stop_price=D("50000.0"),
              cli_ord_id="c2", trigger_signal="mark", reduce_only=False, process_before="2030-01-02T03:04:05.600Z"),
    SendOrder("trailing_stop", "PF_ETHUSD", "buy", D("3"), trailing_stop_max_deviation=D("0.50"),
              trailing_stop_deviation_unit="PERCENT", limit_price_offset_value=D("5"),
              limit_price_offset_unit="QUOTE_CURRENCY", broker="b"),
]


def place(**kw) -> it.PlaceOrder:
    fields = dict(pair="XBTUSD", side="buy", ordertype="limit", volume=D("0.10"), price=D("1E+1"))
    fields.update(kw)
    return it.PlaceOrder(intent_id="r#1/0", rule_id="r", decision_id="r#1", cl_ord_id="r-1-0", **fields)


def test_the_official_example_is_encoded_byte_for_byte():
    order = AddOrder("XBTUSD", "buy", "limit", D("1.25"), price=D("37500"))
    body = form_body({"nonce": 1616492376594, **encode_add_order(order).params})
    assert body == "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert spot_signature(OFFICIAL_SECRET, "/0/private/AddOrder", 1616492376594, body) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")


def test_tricky_values_are_written_exactly():
    request = encode_add_order(TRICKY_SPOT[1])
    assert (request.api, request.method, request.path) == ("spot", "AddOrder", "/0/private/AddOrder")
    assert list(request.params) == sorted(request.params)  # one canonical order
    assert request.params == {
        "pair": "XBTUSD", "type": "sell", "ordertype": "stop-loss-limit", "volume": "0.01", "price": "-5%",
        "price2": "#10", "trigger": "last", "reduce_only": True, "stptype": "cancel-both", "oflags": "post,fciq",
        "timeinforce": "GTD", "starttm": "+5", "expiretm": "+3600", "displayvol": "0.0010",
        "close": {"ordertype": "take-profit-limit", "price": "70000.0", "price2": "+1.5%"},
        "deadline": "2030-01-02T03:04:05.600Z", "cl_ord_id": "6d1b345e-2821-40e2-ad83-4ecb18a06876",
    }
    form = form_body({"nonce": 7, **request.params})
    assert "close%5Bprice2%5D=%2B1.5%25" in form and "price=-5%25" in form and "price2=%2310" in form
    assert "reduce_only=true" in form and "volume=0.01" in form
    assert json.loads(json_body({"nonce": 7, **request.params}))["close"]["price2"] == "+1.5%"
    assert encode_add_order(TRICKY_SPOT[0]).params["price"] == "10"
    assert encode_add_order(TRICKY_SPOT[0]).params["volume"] == "0.10"


def test_booleans_and_integers_stay_typed_in_json_and_read_as_text_in_a_form():
    request = encode_add_order(TRICKY_SPOT[2])
    assert request.params["validate"] is True and request.params["userref"] == 42
    assert request.params["reduce_only"] is False  # asked for explicitly: sent
    body = json.loads(json_body({"nonce": 1, **request.params}))
    assert body["validate"] is True and body["userref"] == 42 and body["reduce_only"] is False
    form = dict(parse_qsl(form_body({"nonce": 1, **request.params})))
    assert (form["validate"], form["userref"], form["reduce_only"]) == ("true", "42", "false")


@pytest.mark.parametrize("order", TRICKY_SPOT)
def test_add_order_decodes_back_from_params_form_and_json(order):
    params = encode_add_order(order).params
    assert decode_add_order(params) == order
    assert decode_add_order(dict(parse_qsl(form_body({"nonce": 1, **params})))) == order
    assert decode_add_order(json.loads(json_body({"nonce": 1, **params}), parse_float=D)) == order


@pytest.mark.parametrize("order", TRICKY_FUTURES)
def test_send_order_decodes_back(order):
    request = encode_send_order(order)
    assert (request.api, request.path) == ("futures", "/derivatives/api/v3/sendorder")
    assert decode_send_order(request.params) == order
    assert decode_send_order(dict(parse_qsl(form_body(request.params)))) == order


def test_futures_parameters_are_named_and_written_as_kraken_futures_wants():
    assert encode_send_order(TRICKY_FUTURES[1]).params == {
        "cliOrdId": "c2", "limitPrice": "49999.50", "orderType": "stp", "processBefore": "2030-01-02T03:04:05.600Z",
        "reduceOnly": False, "side": "sell", "size": "10", "stopPrice": "50000.0", "symbol": "PF_XBTUSD",
        "triggerSignal": "mark",
    }
    assert form_body(encode_send_order(TRICKY_FUTURES[0]).params) == (
        "cliOrdId=c1&limitPrice=10000&orderType=lmt&reduceOnly=true&side=buy&size=0.10&symbol=PF_XBTUSD")


def test_intents_map_onto_their_requests():
    intent = place(price="+5%", close_ordertype="stop-loss", close_price=D("9.50"), oflags=("post",),
                   timeinforce="GTD", expiretm="1031", reduce_only=True)
    request = intent_request(intent, deadline="2030-01-01T00:00:00.000Z", validate=True)
    assert decode_add_order(request.params) == add_order_of(intent, deadline="2030-01-01T00:00:00.000Z",
                                                            validate=True)
    assert request.record() == {
        "api": "spot", "method": "AddOrder", "path": "/0/private/AddOrder",
        "params": {"cl_ord_id": "r-1-0", "close": {"ordertype": "stop-loss", "price": "9.50"},
                   "deadline": "2030-01-01T00:00:00.000Z", "expiretm": "1031", "oflags": "post",
                   "ordertype": "limit", "pair": "XBTUSD", "price": "+5%", "reduce_only": True,
                   "timeinforce": "GTD", "type": "buy", "validate": True, "volume": "0.10"},
    }
    assert "reduce_only" not in intent_request(place()).params  # False: Kraken's default, not sent
    futures = it.FuturesSendOrder(intent_id="f", rule_id="f", decision_id="f#1", cli_ord_id="f-1", symbol="PF_XBTUSD",
                                  side="sell", order_type="lmt", size=D("0.5"), limit_price=D("111.0"),
                                  reduce_only=True)
    sent = intent_request(futures, deadline="2030-01-01T00:00:00.000Z")
    assert decode_send_order(sent.params) == send_order_of(futures, process_before="2030-01-01T00:00:00.000Z")
    assert sent.params["limitPrice"] == "111.0" and sent.params["processBefore"] == "2030-01-01T00:00:00.000Z"


def test_other_intents_and_batches():
    cancel = it.CancelOrder(intent_id="c", rule_id="r", decision_id=None, txids=("T1",), cl_ord_ids=("c1",),
                            userref=7)
    assert intent_request(cancel).record() == {
        "api": "spot", "method": "CancelOrder", "path": "/0/private/CancelOrder",
        "calls": [{"txid": "T1"}, {"cl_ord_id": "c1"}, {"txid": "7"}],
    }
    dms = intent_request(it.DeadManSwitch(intent_id="d", rule_id=None, decision_id=None, timeout=60))
    assert dms.params == {"timeout": 60}
    assert intent_request(it.ReadBalance(intent_id="b", rule_id=None, decision_id=None, market="futures")).path == (
        "/derivatives/api/v3/accounts")
    assert intent_request(it.Log(intent_id="l", rule_id=None, decision_id=None, level="info", message="x")) is None


@pytest.mark.parametrize(("params", "name", "missing"), [
    ({"type": "buy", "volume": "1"}, "pair", True),
    ({"pair": "XBTUSD", "type": "hold", "volume": "1"}, "type", False),
    ({"pair": "XBTUSD", "type": "buy"}, "volume", True),
    ({"pair": "XBTUSD", "type": "buy", "volume": "1", "price": "abc"}, "price", False),
    ({"pair": "XBTUSD", "type": "buy", "volume": "1", "close[price]": "x"}, "close[price]", False),
    ({"pair": "XBTUSD", "type": "buy", "volume": "1", "reduce_only": "maybe"}, "reduce_only", False),
    ({"pair": "XBTUSD", "type": "buy", "volume": "1", "userref": "1.5"}, "userref", False),
])
def test_malformed_add_orders_name_the_parameter(params, name, missing):
    with pytest.raises(BadParameter) as caught:
        decode_add_order(params)
    assert (caught.value.name, caught.value.missing) == (name, missing)


def test_malformed_send_orders_name_the_parameter():
    with pytest.raises(BadParameter) as caught:
        decode_send_order({"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy"})
    assert (caught.value.name, caught.value.missing) == ("size", True)
    with pytest.raises(BadParameter) as caught:
        decode_send_order({"orderType": "lmt", "symbol": "PF_XBTUSD", "side": "buy", "size": "1", "limitPrice": "NaN"})
    assert (caught.value.name, caught.value.missing) == ("limitPrice", False)
