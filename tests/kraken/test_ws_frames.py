"""Frame parsing against Kraken's documented WebSocket messages (reference/kraken-api.md §6, §8)."""

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from rules_engine.core.events import Tick
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.ws_frames import (
    HEARTBEAT,
    ErrorReply,
    FuturesDialect,
    Ignored,
    Malformed,
    Pong,
    Status,
    SubscribeAck,
    V1Dialect,
    V2Dialect,
    dialect_for,
    parse_futures,
    parse_v1,
    parse_v2,
)
from rules_engine.pairs import PairRegistry, default_registry

T = 1_700_000_000.25  # receive time handed in by the caller


def only_event(result):
    assert result.ticks == ()
    assert len(result.events) == 1
    return result.events[0]


def only_tick(result) -> Tick:
    assert result.events == ()
    assert len(result.ticks) == 1
    return result.ticks[0]


# --- v2 -------------------------------------------------------------------------------

V2_SNAPSHOT_DOCS = (
    '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
    '"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,'
    '"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}'
)


ALGO_REGISTRY = PairRegistry.from_asset_pairs(
    {"ALGOUSD": {"altname": "ALGOUSD", "wsname": "ALGO/USD", "base": "ALGO", "quote": "ZUSD"}}
)


def test_v2_docs_snapshot_maps_symbol_prices_and_both_times():
    without_algo = PairRegistry(p for p in default_registry() if p.base_code != "ALGO")
    assert isinstance(only_event(parse_v2(V2_SNAPSHOT_DOCS, T, registry=without_algo)), Malformed)  # unknown pair
    tick = only_tick(parse_v2(V2_SNAPSHOT_DOCS, T, registry=ALGO_REGISTRY))
    assert tick == Tick(
        symbol="ALGOUSD",
        market="spot",
        time=T,
        last=Decimal("0.10035"),
        bid=Decimal("0.10025"),
        ask=Decimal("0.10036"),
        exchange_time=datetime(2023, 9, 25, 9, 4, 31, 742648, tzinfo=timezone.utc).timestamp(),
    )


def test_v2_update_for_btc_becomes_xbtusd_with_exact_decimals():
    frame = (
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":42694.5,"bid_qty":1.0,'
        '"ask":42694.6,"ask_qty":31.2,"last":42694.60000,"volume":2068.4,"vwap":42596.4,"low":42190.2,'
        '"high":43165.0,"change":-440.1,"change_pct":-1.02,"trades":21771}]}'
    )
    tick = only_tick(parse_v2(frame, T))
    assert tick.symbol == "XBTUSD"
    assert str(tick.last) == "42694.60000"  # the text Kraken sent, not a float round trip
    assert tick.mid == Decimal("42694.55")
    assert tick.exchange_time is None  # no timestamp in this frame


def test_v2_string_numbers_and_integer_prices_are_accepted():
    frame = (
        '{"channel":"ticker","type":"update","data":[{"symbol":"ETH/USD","bid":"2500.1","ask":2501,"last":"2500.5"}]}'
    )
    tick = only_tick(parse_v2(frame, T))
    assert (tick.symbol, tick.bid, tick.ask, tick.last) == ("ETHUSD", Decimal("2500.1"), 2501, Decimal("2500.5"))
    assert isinstance(tick.ask, Decimal)


def test_v2_doge_uses_modern_code_on_the_wire():
    frame = '{"channel":"ticker","type":"update","data":[{"symbol":"DOGE/USD","bid":0.1,"ask":0.2,"last":0.15}]}'
    assert only_tick(parse_v2(frame, T)).symbol == "XDGUSD"


def test_v2_heartbeat_status_and_pong():
    assert only_event(parse_v2('{"channel":"heartbeat"}', T)) is HEARTBEAT
    status = (
        '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online",'
        '"api_version":"v2","connection_id":7974620515126709019}]}'
    )
    assert only_event(parse_v2(status, T)) == Status("online", "2.0.10")
    pong = (
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
        '"time_out":"2023-09-24T14:10:23.799703Z"}'
    )
    assert only_event(parse_v2(pong, T)) == Pong(101)


def test_v2_subscribe_ack_success_captured_live():
    ack = (
        '{"method":"subscribe","result":{"channel":"ticker","event_trigger":"trades","snapshot":true,'
        '"symbol":"USDT/USD"},"success":true,"time_in":"2026-09-24T03:54:28.829165Z",'
        '"time_out":"2026-09-24T03:54:28.829217Z"}'
    )
    assert only_event(parse_v2(ack, T)) == SubscribeAck("USDTUSD", True)


def test_v2_subscribe_error_for_unsupported_pair_keeps_kraken_name_and_message():
    ack = (
        '{"error":"Currency pair not supported NOPE/USD","method":"subscribe","success":false,'
        '"symbol":"NOPE/USD","time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}'
    )
    assert only_event(parse_v2(ack, T)) == SubscribeAck("NOPE/USD", False, "Currency pair not supported NOPE/USD")


def test_v2_unsubscribe_ack_and_symbol_less_error():
    ack = '{"method":"unsubscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true}'
    assert only_event(parse_v2(ack, T)) == SubscribeAck("XBTUSD", True, None, "unsubscribe")
    error = '{"error":"Malformed request","method":"error","success":false,"time_in":"x","time_out":"y"}'
    assert only_event(parse_v2(error, T)) == ErrorReply("Malformed request")


def test_v2_other_channels_are_ignored_not_malformed():
    assert only_event(parse_v2('{"channel":"book","type":"update","data":[]}', T)) == Ignored("channel book")


@pytest.mark.parametrize(
    "frame, reason",
    [
        ("", "invalid JSON"),
        ('{"channel":"ticker"', "invalid JSON"),
        ('{"channel":"heartbeat"} trailing', "Extra data"),
        (' \n{"channel":"heartbeat"', "invalid JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"type":"update"}', "neither channel nor method"),
        ('{"channel":"ticker","data":{}}', "no data list"),
        ('{"channel":"ticker","data":[{"bid":1,"ask":2}]}', "no symbol"),
        ('{"channel":"ticker","data":[{"symbol":"NOPE/USD","bid":1}]}', "unknown pair"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","bid":-1,"ask":2}]}', "bid must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","bid":0,"ask":2}]}', "bid must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","bid":-1.5,"ask":2}]}', "bid must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","bid":0.0,"ask":2}]}', "bid must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"0e5"}]}', "ask must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"-x"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"-2.5"}]}', "ask must be positive"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"1.2.3"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":""}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"NaN"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":" 1"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","ask":"\u0661"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":NaN}]}', "last is not a number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":"1_000"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":"Infinity"}]}', "not a decimal number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":true}]}', "not a number"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","volume":1}]}', "no last, bid or ask"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":1,"timestamp":"yesterday"}]}', "RFC 3339"),
        ('{"channel":"ticker","data":[{"symbol":"BTC/USD","last":1,"timestamp":"2023-09-25T09:04:31"}]}', "time zone"),
        ('{"channel":"status","data":[{"version":"2"}]}', "status.system"),
        ('{"method":"subscribe","success":"yes"}', "boolean success"),
        ('{"method":"subscribe","success":true,"result":{"channel":"ticker"}}', "no symbol"),
    ],
)
def test_v2_malformed_frames_are_reported_never_raised(frame, reason):
    event = only_event(parse_v2(frame, T))
    assert isinstance(event, Malformed)
    assert reason in event.reason
    assert event.excerpt == frame[:200]


def test_malformed_frame_with_one_bad_entry_yields_no_ticks_at_all():
    frame = (
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":1},'
        '{"symbol":"ETH/USD","last":"abc"}]}'
    )
    assert isinstance(only_event(parse_v2(frame, T)), Malformed)


def test_surrounding_whitespace_is_valid_json():
    assert only_event(parse_v2(' {"channel":"heartbeat"}\n', T)) is HEARTBEAT


def test_bytes_frames_are_decoded_and_bad_utf8_is_malformed():
    assert only_event(parse_v2(b'{"channel":"heartbeat"}', T)) is HEARTBEAT
    assert only_event(parse_v2(b'{"channel":"heartbeat"} ', T)) is HEARTBEAT
    event = only_event(parse_v2(b"\xff\xfe", T))
    assert isinstance(event, Malformed) and "UTF-8" in event.reason


def test_long_garbage_is_excerpted():
    event = only_event(parse_v2("x" * 5000, T))
    assert isinstance(event, Malformed) and len(event.excerpt) == 200


# --- v1 -------------------------------------------------------------------------------

V1_TICKER_DOCS = (
    '[340,{"a":["42694.60000",31,"31.27308189"],"b":["42694.50000",1,"1.01355072"],'
    '"c":["42694.60000","0.00455773"],"v":["2068.49653432","2075.61202911"],'
    '"p":["42596.41907","42598.31137"],"t":[21771,22049],"l":["42190.20000","42190.20000"],'
    '"h":["43165.00000","43165.00000"],"o":["43134.70000","43159.20000"]},"ticker","XBT/USD"]'
)


def test_v1_docs_ticker_array():
    tick = only_tick(parse_v1(V1_TICKER_DOCS, T))
    assert tick == Tick("XBTUSD", "spot", T, Decimal("42694.60000"), Decimal("42694.50000"), Decimal("42694.60000"))
    assert tick.exchange_time is None  # v1 ticker frames carry no timestamp


def test_v1_subscription_status_subscribed_unsubscribed_and_errors():
    subscribed = (
        '{"channelID":10001,"channelName":"ticker","event":"subscriptionStatus","pair":"XBT/EUR",'
        '"status":"subscribed","subscription":{"name":"ticker"}}'
    )
    assert only_event(parse_v1(subscribed, T)) == SubscribeAck("XBTEUR", True)
    unsubscribed = '{"channelName":"ticker","event":"subscriptionStatus","pair":"XBT/USD","status":"unsubscribed"}'
    assert only_event(parse_v1(unsubscribed, T)) == SubscribeAck("XBTUSD", True, None, "unsubscribe")
    error = (
        '{"errorMessage":"Subscription depth not supported","event":"subscriptionStatus","pair":"XBT/USD",'
        '"status":"error","subscription":{"depth":42,"name":"book"}}'
    )
    assert only_event(parse_v1(error, T)) == SubscribeAck("XBTUSD", False, "Subscription depth not supported")
    iso = (
        '{"errorMessage":"Currency pair not in ISO 4217-A3 format XBTUSDT","event":"subscriptionStatus",'
        '"pair":"XBTUSDT","status":"error","subscription":{"name":"ticker"}}'
    )
    assert only_event(parse_v1(iso, T)) == SubscribeAck(
        "XBTUSDT", False, "Currency pair not in ISO 4217-A3 format XBTUSDT"
    )


def test_v1_system_status_heartbeat_pong_error():
    system = '{"connectionID":8628615390848610000,"event":"systemStatus","status":"online","version":"1.9.1"}'
    assert only_event(parse_v1(system, T)) == Status("online", "1.9.1")
    assert only_event(parse_v1('{"event":"heartbeat"}', T)) is HEARTBEAT
    assert only_event(parse_v1('{"event":"pong","reqid":42}', T)) == Pong(42)
    assert only_event(parse_v1('{"event":"error","errorMessage":"Malformed request"}', T)) == ErrorReply(
        "Malformed request"
    )


def test_v1_other_channels_are_ignored():
    spread = '[0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBT/USD"]'
    assert only_event(parse_v1(spread, T)) == Ignored("channel spread")


@pytest.mark.parametrize(
    "frame, reason",
    [
        ('[340,{"c":["1.0","1"]},"ticker"]', "3 elements"),
        ('[340,["1.0"],"ticker","XBT/USD"]', "payload is not an object"),
        ('[340,{"c":["1.0","1"]},"ticker","NOPE/USD"]', "unknown pair"),
        ('[340,{"c":["1.0","1"]},"ticker",7]', "no pair"),
        ('[340,{"c":"1.0"},"ticker","XBT/USD"]', "'c' is not a non-empty array"),
        ('[340,{"c":["abc","1"]},"ticker","XBT/USD"]', "not a decimal number"),
        ('[340,{"v":["1","2"]},"ticker","XBT/USD"]', "no last, bid or ask"),
        ('{"status":"online"}', "no event"),
        ('{"event":"subscriptionStatus","pair":"XBT/USD","status":"pending"}', "unknown status"),
        ('"heartbeat"', "neither an array nor an object"),
    ],
)
def test_v1_malformed(frame, reason):
    event = only_event(parse_v1(frame, T))
    assert isinstance(event, Malformed)
    assert reason in event.reason


# --- futures --------------------------------------------------------------------------

FUTURES_TICKER_DOCS = (
    '{"time":1788646159008,"product_id":"PF_XBTUSD","funding_rate":0.9941052570914733,'
    '"funding_rate_prediction":0.74094239761875,"relative_funding_rate":0.000012439370833333,'
    '"relative_funding_rate_prediction":9.275625e-6,"next_funding_rate_time":1788649200000,'
    '"leverage":"100x","premium":0.0,"feed":"ticker","bid":79874.0,"ask":79875.0,"bid_size":0.0656,'
    '"ask_size":0.0617,"volume":2426.872,"dtm":0,"index":79871.28,"last":79874.0,"change":0.3,'
    '"suspended":false,"tag":"perpetual","pair":"XBT:USD","openInterest":2055.214,'
    '"markPrice":79873.40587777576,"maturityTime":0,"post_only":false,"volumeQuote":193603003.7945,'
    '"open":79634.0,"high":80210.0,"low":79457.0}'
)


def test_futures_docs_ticker():
    tick = only_tick(parse_futures(FUTURES_TICKER_DOCS, T))
    assert tick == Tick(
        "PF_XBTUSD", "futures", T, Decimal("79874.0"), Decimal("79874.0"), Decimal("79875.0"), 1788646159.008
    )


def test_futures_exponent_notation_prices_are_exact():
    frame = (
        '{"time":1788646159008,"product_id":"pf_shibusd","feed":"ticker","bid":5.494e-6,'
        '"ask":5.495E-6,"last":5.4945e-6}'
    )
    tick = only_tick(parse_futures(frame, T))
    assert tick.symbol == "PF_SHIBUSD"
    assert (tick.bid, tick.ask, tick.last) == (Decimal("0.000005494"), Decimal("0.000005495"), Decimal("0.0000054945"))


def test_futures_info_heartbeat_and_acks():
    assert only_event(parse_futures('{"event":"info","version":1}', T)) == Status(None, "1")
    assert only_event(parse_futures('{"feed":"heartbeat","time":1534262350627}', T)) is HEARTBEAT
    subscribed = '{"event":"subscribed","feed":"ticker","product_ids":["PF_XBTUSD","PF_ETHUSD"]}'
    assert parse_futures(subscribed, T).events == (
        SubscribeAck("PF_XBTUSD", True),
        SubscribeAck("PF_ETHUSD", True),
    )
    unsubscribed = '{"event":"unsubscribed","feed":"ticker","product_ids":["PF_XBTUSD"]}'
    assert only_event(parse_futures(unsubscribed, T)) == SubscribeAck("PF_XBTUSD", True, None, "unsubscribe")
    assert only_event(parse_futures('{"event":"subscribed","feed":"heartbeat"}', T)) == Ignored("subscribed heartbeat")


def test_futures_failures():
    failed = '{"event":"subscribed_failed","feed":"ticker","product_ids":["PF_NOPE"],"message":"Invalid product id"}'
    assert only_event(parse_futures(failed, T)) == SubscribeAck("PF_NOPE", False, "Invalid product id")
    bare = '{"event":"subscribed_failed","feed":"ticker","product_ids":["PF_NOPE"]}'
    assert only_event(parse_futures(bare, T)) == SubscribeAck("PF_NOPE", False, "subscribed_failed")
    no_ids = '{"event":"subscribed_failed","feed":"ticker","message":"Invalid product id"}'
    assert only_event(parse_futures(no_ids, T)) == ErrorReply("subscribed_failed ticker: Invalid product id")
    alert = '{"event":"alert","message":"Couldn\'t subscribe to invalid product `NOT_REAL`"}'
    assert only_event(parse_futures(alert, T)) == ErrorReply("Couldn't subscribe to invalid product `NOT_REAL`")


@pytest.mark.parametrize(
    "frame, reason",
    [
        ('{"feed":"ticker","bid":1.0}', "no product_id"),
        ('{"feed":"ticker","product_id":"PF_XBTUSD","time":"now","last":1.0}', "milliseconds"),
        ('{"feed":"ticker","product_id":"PF_XBTUSD","last":"1e"}', "not a decimal number"),
        ('{"feed":"ticker","product_id":"PF_XBTUSD"}', "no last, bid or ask"),
        ('{"event":"subscribed","feed":"ticker","product_ids":"PF_XBTUSD"}', "bad product_ids"),
        ('{"product_id":"PF_XBTUSD"}', "neither feed nor event"),
    ],
)
def test_futures_malformed(frame, reason):
    event = only_event(parse_futures(frame, T))
    assert isinstance(event, Malformed)
    assert reason in event.reason


# --- requests and names ---------------------------------------------------------------


def test_requests_use_each_protocols_wire_names():
    v2 = V2Dialect()
    assert json.loads(v2.subscribe_request(["XBTUSD", "XDGUSD"], 7)) == {
        "method": "subscribe",
        "params": {"channel": "ticker", "symbol": ["BTC/USD", "DOGE/USD"]},
        "req_id": 7,
    }
    bbo = json.loads(V2Dialect(event_trigger="bbo").subscribe_request(["XBTUSD"], 1))
    assert bbo["params"]["event_trigger"] == "bbo"
    assert json.loads(v2.unsubscribe_request(["XBTUSD"], 8))["method"] == "unsubscribe"
    assert json.loads(v2.ping_request(9)) == {"method": "ping", "req_id": 9}

    v1 = V1Dialect()
    assert json.loads(v1.subscribe_request(["XBTUSD"], 42)) == {
        "event": "subscribe",
        "pair": ["XBT/USD"],
        "subscription": {"name": "ticker"},
        "reqid": 42,
    }
    assert json.loads(v1.ping_request(3)) == {"event": "ping", "reqid": 3}

    futures = FuturesDialect()
    assert json.loads(futures.subscribe_request(["PF_XBTUSD"], 1)) == {
        "event": "subscribe",
        "feed": "ticker",
        "product_ids": ["PF_XBTUSD"],
    }
    assert [json.loads(r) for r in futures.connect_requests()] == [{"event": "subscribe", "feed": "heartbeat"}]
    assert futures.ping_request(1) is None


def test_canonical_names_and_urls():
    v2 = dialect_for("v2")
    assert [v2.canonical(n) for n in ("XBTUSD", "xbt/usd", "BTC/USD", "XXBTZUSD")] == ["XBTUSD"] * 4
    with pytest.raises(ValueError, match="unknown Kraken spot pair 'NOPE'"):
        v2.canonical("NOPE")
    futures = dialect_for("futures")
    assert futures.canonical(" pf_xbtusd ") == "PF_XBTUSD"
    with pytest.raises(ValueError):
        futures.canonical("PF XBT")
    with pytest.raises(ValueError, match="protocol must be one of"):
        dialect_for("v3")
    with pytest.raises(ValueError, match="event_trigger"):
        V2Dialect(event_trigger="sometimes")
    endpoints = KrakenEndpoints()
    assert (dialect_for("v2").url(endpoints), dialect_for("v1").url(endpoints), futures.url(endpoints)) == (
        "wss://ws.kraken.com/v2",
        "wss://ws.kraken.com",
        "wss://futures.kraken.com/ws/v1",
    )


def test_a_parsed_tick_is_the_same_object_the_tick_constructor_builds():
    frame = ('{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":60000.0,"ask":60000.1,'
             '"last":60000.1,"timestamp":"2026-01-02T03:04:05.123456Z"}]}')
    tick = only_tick(parse_v2(frame, T))
    built = Tick("XBTUSD", "spot", T, Decimal("60000.1"), Decimal("60000.0"), Decimal("60000.1"),
                 datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc).timestamp())
    assert tick == built and hash(tick) == hash(built) and vars(tick) == vars(built) and type(tick) is Tick
    assert tick.mid == Decimal("60000.05")
    with pytest.raises(AttributeError):
        tick.last = Decimal(1)  # still frozen
