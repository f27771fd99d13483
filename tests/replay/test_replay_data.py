"""Market data readers: every format (v2 book frames as best bid/ask ticks), candle ordering, intervals,
skipped frames counted, errors at file:line."""

import io
import json
from collections import Counter
from decimal import Decimal

import pytest

from rules_engine.replay.data import (
    DataError,
    candle_path,
    candle_ticks,
    merged_ticks,
    open_data,
    played,
    played_tick,
)
from rules_engine.replay.replay import run_replay
from rules_engine.replay.report import write_text
from rules_engine.rules import load_rules_text

D = Decimal


def prices(ticks):
    return [(t.time, str(t.last)) for t in ticks]


def test_a_rising_candle_plays_open_low_high_close_at_quarter_intervals():
    ticks = candle_ticks("XBTUSD", (1000.0, D(100), D(110), D(95), D(105)), 60.0)
    assert prices(ticks) == [(1000.0, "100"), (1015.0, "95"), (1030.0, "110"), (1045.0, "105")]
    assert all(t.bid == t.ask == t.last and t.market == "spot" for t in ticks)


def test_a_falling_candle_plays_open_high_low_close_and_a_flat_one_counts_as_rising():
    assert candle_path(D(100), D(110), D(95), D(97)) == (D(100), D(110), D(95), D(97))
    assert candle_path(D(100), D(110), D(95), D(100)) == (D(100), D(95), D(110), D(100))


def test_ohlcvt_csv_takes_pair_and_interval_from_kraken_file_name(tmp_path):
    path = tmp_path / "XBTUSD_60.csv"
    path.write_text("1700000000,70000,70500,69500,70400,1.5,10\n1700003600,70400,70450,69000,69100,2,12\n")
    data = open_data(path)
    assert (data.format, data.symbol, data.interval) == ("ohlcvt", "XBTUSD", 3600.0)
    assert prices(data.ticks()) == [
        (1700000000.0, "70000"), (1700000900.0, "69500"), (1700001800.0, "70500"), (1700002700.0, "70400"),
        (1700003600.0, "70400"), (1700004500.0, "70450"), (1700005400.0, "69000"), (1700006300.0, "69100"),
    ]
    assert data.estimate() == 8


def test_ohlc_csv_with_a_header_uses_the_smallest_gap_or_the_given_interval_and_pair(tmp_path):
    path = tmp_path / "eth.csv"
    path.write_text("timestamp,open,high,low,close\n100,2500,2510,2490,2505\n400,2505,2506,2400,2401\n"
                    "700,2401,2402,2300,2390\n1300,2390,2395,2380,2381\n")
    data = open_data(path, pair="ETH/USD")
    assert (data.format, data.symbol, data.interval) == ("ohlc", "ETHUSD", 300.0)
    assert [t.time for t in data.ticks()][:5] == [100.0, 175.0, 250.0, 325.0, 400.0]
    assert open_data(path, pair="ETHUSD", interval=120.0).interval == 120.0


def test_rest_ohlc_json_drops_the_uncommitted_last_row(tmp_path):
    path = tmp_path / "ohlc.json"
    rows = [[1700000000, "70000.0", "70100.0", "69900.0", "70050.0", "70010.0", "1.2", 5],
            [1700000060, "70050.0", "70200.0", "70000.0", "70150.0", "70100.0", "0.9", 3],
            [1700000120, "70150.0", "70160.0", "70140.0", "70155.0", "70150.0", "0.1", 1]]
    path.write_text(json.dumps({"error": [], "result": {"XXBTZUSD": rows, "last": 1700000060}}))
    data = open_data(path)
    assert (data.format, data.symbol, data.interval) == ("rest-json", "XBTUSD", 60.0)
    ticks = list(data.ticks())
    assert len(ticks) == 8 and ticks[-1].time == 1700000105.0 and ticks[-1].last == D("70150.0")


def test_candles_carry_the_volume_of_ohlcvt_and_rest_rows_and_none_for_ohlc(tmp_path):
    ohlcvt = tmp_path / "XBTUSD_60.csv"
    ohlcvt.write_text("1700000000,70000,70500,69500,70400,1.5,10\n")
    rest = tmp_path / "ohlc.json"
    rest.write_text(json.dumps({"error": [], "result": {"XXBTZUSD": [
        [1700000000, "70000.0", "70100.0", "69900.0", "70050.0", "70010.0", "1.2", 5]], "last": 1700000000}}))
    ohlc = tmp_path / "ETHUSD_5.csv"
    ohlc.write_text("100,2500,2510,2490,2505\n")
    assert [c.volume for c in open_data(ohlcvt).candles()] == [D("1.5")]
    assert [c.volume for c in open_data(rest).candles()] == [D("1.2")]
    assert [c.volume for c in open_data(ohlc).candles()] == [D(0)]
    ohlcvt.write_text("1700000000,70000,70500,69500,70400,lots,10\n")
    with pytest.raises(DataError, match="XBTUSD_60.csv:1: volume 'lots' is not a number"):
        list(open_data(ohlcvt).candles())


def test_ws_jsonl_reads_v2_v1_and_futures_frames_bare_or_wrapped(tmp_path):
    v2 = {"channel": "ticker", "type": "update", "data": [{
        "symbol": "BTC/USD", "bid": 69999.9, "bid_qty": 1, "ask": 70000.1, "ask_qty": 1, "last": 70000.0,
        "volume": 1, "vwap": 1, "low": 1, "high": 1, "change": 0, "change_pct": 0,
        "timestamp": "2023-11-14T22:13:20.000000Z"}]}
    v1 = [340, {"a": ["70001.0", 1, "1.0"], "b": ["70000.5", 1, "1.0"], "c": ["70000.8", "0.1"]}, "ticker", "XBT/USD"]
    futures = {"feed": "ticker", "product_id": "PF_XBTUSD", "bid": 69990, "ask": 69991, "last": 69990.5,
               "time": 1700000010000}
    lines = [json.dumps(v2), '{"channel":"heartbeat"}',
             json.dumps({"time": 1700000005, "frame": v1}),
             json.dumps({"time": "2023-11-14T22:13:26Z", "frame": json.dumps(v1)}),
             json.dumps(v1),
             json.dumps(futures)]
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = open_data(path)
    assert data.format == "ws-jsonl"
    ticks = list(data.ticks())
    assert [(t.symbol, t.market, t.time, str(t.last), str(t.bid)) for t in ticks] == [
        ("XBTUSD", "spot", 1700000000.0, "70000.0", "69999.9"),
        ("XBTUSD", "spot", 1700000005.0, "70000.8", "70000.5"),
        ("XBTUSD", "spot", 1700000006.0, "70000.8", "70000.5"),
        ("XBTUSD", "spot", 1700000007.0, "70000.8", "70000.5"),   # no time: 1 s after the previous frame
        ("PF_XBTUSD", "futures", 1700000010.0, "69990.5", "69990"),
    ]


@pytest.mark.parametrize("name,text,message", [
    ("XBTUSD_1.csv", "100,1,2,0.5,1.5,1,1\n160,1.5,x,1,1.2,1,1\n", "XBTUSD_1.csv:2: high 'x' is not a number"),
    ("XBTUSD_1.csv", "100,1,2,0.5,1.5,1,1\n100,1.5,2,1,1.2,1,1\n", "XBTUSD_1.csv:2: timestamp 100 is not after"),
    ("XBTUSD_1.csv", "100,1,2,0.5,1.5,1,1\n160,1.5,1.4,1,1.2,1,1\n", "XBTUSD_1.csv:2: high 1.4 and low 1 do not contain"),
    ("XBTUSD_1.csv", "100,1,2\n", "expected timestamp,open,high,low,close"),
    ("f.jsonl", '[340, {"c": ["abc", "1"]}, "ticker", "XBT/USD"]\n', "f.jsonl:1: malformed v1 frame: c[0] is not a decimal"),
    ("f.jsonl", '{"channel":"heartbeat"}\n{"nope": 1}\n', "f.jsonl:2: not a Kraken WebSocket frame"),
    ("f.jsonl", '[340, {"c": ["1.5", "1"]}, "ticker", "XBT/USD"]\n', "f.jsonl:1: the first frame carries no time"),
])
def test_bad_data_is_an_error_naming_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as raised:
        list(open_data(path).ticks())
    assert message in str(raised.value)


def test_bytes_that_are_not_utf8_are_a_data_error(tmp_path):
    path = tmp_path / "XBTUSD_5.csv"
    path.write_bytes(b"100,1,2,0.5,1.5,1,1\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="XBTUSD_5.csv: not UTF-8 text"):
        list(open_data(path).ticks())


def test_unknown_pair_and_format_are_refused(tmp_path):
    path = tmp_path / "NOPE_5.csv"
    path.write_text("100,1,2,0.5,1.5,1,1\n")
    with pytest.raises(DataError, match="unknown Kraken pair 'NOPE'"):
        open_data(path)
    with pytest.raises(DataError, match="unknown data format"):
        open_data(path, data_format="parquet", pair="XBTUSD")


def test_files_merge_by_time(tmp_path):
    (tmp_path / "XBTUSD_1.csv").write_text("0,10,10,10,10,1,1\n60,11,11,11,11,1,1\n")
    (tmp_path / "ETHUSD_1.csv").write_text("30,5,5,5,5,1,1\n")
    merged = merged_ticks([open_data(tmp_path / "XBTUSD_1.csv"), open_data(tmp_path / "ETHUSD_1.csv")])
    assert [(t.time, t.symbol) for t in merged][:6] == [
        (0.0, "XBTUSD"), (15.0, "XBTUSD"), (30.0, "XBTUSD"), (30.0, "ETHUSD"), (45.0, "XBTUSD"), (45.0, "ETHUSD")]


def test_replay_plays_the_merged_ticks_and_makes_a_candle_tick_only_on_demand(tmp_path):
    (tmp_path / "XBTUSD_1.csv").write_text("1700000000,10,12,9,11,1,1\n1700000060,11,11,8,9,1,1\n")
    frame = {"channel": "ticker", "type": "update", "data": [{
        "symbol": "BTC/USD", "bid": 9.9, "bid_qty": 1, "ask": 10.1, "ask_qty": 1, "last": 10.0, "volume": 1,
        "vwap": 1, "low": 1, "high": 1, "change": 0, "change_pct": 0, "timestamp": "2023-11-14T22:13:35Z"}]}
    (tmp_path / "frames.jsonl").write_text(json.dumps(frame) + "\n")
    files = [open_data(tmp_path / "XBTUSD_1.csv"), open_data(tmp_path / "frames.jsonl")]
    items = list(played(files))
    assert [played_tick(item) for item in items] == list(merged_ticks(files))
    assert [(time, symbol, value, Decimal(exact)) for time, symbol, value, exact, tick in items if tick is None][:2] \
        == [(1700000000.0, "XBTUSD", 10.0, Decimal(10)), (1700000015.0, "XBTUSD", 9.0, Decimal(9))]  # rising: low first
    assert [tick.bid for *_, tick in items if tick is not None] == [Decimal("9.9")]


def test_played_reads_csv_rows_as_candles_does_even_where_floats_cannot_tell(tmp_path):
    """`played` checks a CSV row's prices as floats; where floats tie it asks the Decimals, so
    the same rows play (same path: rising or falling) and the same rows are refused."""
    path = tmp_path / "XBTUSD_1.csv"
    rows = ["time,open,high,low,close,volume,trades",  # a header
            "60,10,12,9,11,1,1",
            "120,1.00000000000000001,1.00000000000000002,1,1.0,1,1",  # close == open as floats only: falling
            "180,5,5,5,5,0,1",  # a flat candle, no volume
            "240,7, 8,6,1E+1,1e-3,1",  # close above high: refused below
            ]
    path.write_text("\n".join(rows[:4]) + "\n")
    items = list(played([open_data(path)]))
    assert [played_tick(item) for item in items] == list(open_data(path).ticks())
    assert [Decimal(exact) for *_, exact, _ in items[4:8]] == [
        Decimal("1.00000000000000001"), Decimal("1.00000000000000002"), Decimal(1), Decimal("1.0")]
    refused = 0
    for last in (rows[4], "300,2,1.5,1,1.2,1,1", "300,2,3,1,2,-0.0000000000000000000000000000001,1", "30,2,3,1,2,1,1",
                 "300,nan,3,1,2,1,1", "300,2,1e400,1,2,1,1", "300,2,3,1,2,0,1", "300,1_0,1_1,9,10.5,1,1"):
        path.write_text("\n".join([*rows[1:4], last]) + "\n")
        try:
            expected = list(open_data(path).ticks())
        except DataError as exc:
            with pytest.raises(DataError) as replayed:
                list(played([open_data(path)]))
            assert str(replayed.value) == str(exc)
            refused += 1
        else:
            assert [played_tick(item) for item in played([open_data(path)])] == expected
    assert refused == 5


def book(kind, bids, asks, stamp=None, symbol="BTC/USD"):
    entry = {"symbol": symbol, "bids": [{"price": p, "qty": q} for p, q in bids],
             "asks": [{"price": p, "qty": q} for p, q in asks], "checksum": 0}
    if stamp:
        entry["timestamp"] = stamp
    return {"channel": "book", "type": kind, "data": [entry]}


BOOK_FRAMES = [
    {"method": "subscribe", "success": True, "result": {"channel": "book", "symbol": "BTC/USD", "depth": 10}},
    {"time": 1700000000, "frame": book("snapshot", [(70000.0, 1), (69990.0, 2)], [(70010.0, 1), (70020.0, 3)])},
    book("update", [(69995.0, 1)], [], "2023-11-14T22:13:21Z"),            # a lower bid: best unchanged
    book("update", [(70000.0, 0)], [], "2023-11-14T22:13:22Z"),            # the best bid leaves: 69995
    book("update", [], [(70005.5, 0.5)], "2023-11-14T22:13:23Z"),          # a better ask
    {"channel": "heartbeat"},
    {"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD", "price": 70001, "qty": 1}]},
    {"channel": "heartbeat"},
]


def test_v2_book_frames_play_best_bid_and_ask_ticks_and_skipped_frames_are_counted(tmp_path):
    path = tmp_path / "book.jsonl"
    path.write_text("\n".join(json.dumps(f) for f in BOOK_FRAMES) + "\n")
    skipped = Counter()
    ticks = list(open_data(path).ticks(skipped=skipped))
    assert [(t.time, t.last, str(t.bid), str(t.ask)) for t in ticks] == [
        (1700000000.0, None, "70000.0", "70010.0"),
        (1700000002.0, None, "69995.0", "70010.0"),
        (1700000003.0, None, "69995.0", "70005.5"),
    ]
    assert skipped == {"heartbeat": 2, "channel trade": 1, "subscription answer": 1,
                       "book (best bid and ask unchanged)": 1}


def test_a_spread_trigger_replays_from_book_frames_and_the_report_counts_skipped_frames(tmp_path):
    frames = [
        {"time": 1700000000, "frame": book("snapshot", [(70000.0, 1)], [(70010.0, 1)])},
        book("update", [(70000.0, 0), (69980.0, 1)], [], "2023-11-14T22:13:30Z"),   # spread 10 -> 30
        {"channel": "heartbeat"},
    ]
    path = tmp_path / "book.jsonl"
    path.write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    loaded = load_rules_text("""version: 1
rules:
  - id: wide
    triggers: [{type: spread, symbol: XBTUSD, crosses_above: 25}]
    actions: [{type: log, message: "spread {spread}"}]
""")
    result = run_replay(loaded.ruleset, [open_data(path)])
    (fire,) = list(result.ledger.fires.rows())
    assert fire["rule"] == "wide" and fire["time"] == 1700000010.0
    assert result.skipped == {"heartbeat": 1}
    out = io.StringIO()
    write_text(result, out)
    assert "skipped frames (no tick): heartbeat 1" in out.getvalue()


def test_a_file_of_frames_without_ticks_says_what_it_skipped(tmp_path):
    path = tmp_path / "quiet.jsonl"
    path.write_text('{"channel":"heartbeat"}\n{"channel":"heartbeat"}\n{"channel":"ohlc","type":"update","data":[]}\n')
    loaded = load_rules_text("version: 1\nrules:\n  - id: x\n    triggers: [{type: timer, every: 1m}]\n"
                             "    actions: [{type: log, message: hi}]\n")
    with pytest.raises(DataError, match=r"the data files hold no ticks \(skipped frames: channel ohlc 1, heartbeat 2\)"):
        run_replay(loaded.ruleset, [open_data(path)])


def test_a_book_of_a_pair_assetpairs_does_not_list_is_counted_not_an_error(tmp_path):
    frames = [book("snapshot", [(1.0, 5)], [(1.1, 5)], "2023-11-14T22:13:20Z", symbol="NOPE/EUR"),
              *BOOK_FRAMES[1:3]]
    path = tmp_path / "book.jsonl"
    path.write_text("\n".join(json.dumps(f) for f in frames) + "\n")
    data = open_data(path)
    ticks = list(data.ticks(skipped=Counter()))
    assert [(t.symbol, str(t.bid)) for t in ticks] == [("XBTUSD", "70000.0")]
    assert data.unknown_pairs == {"NOPE/EUR": 1}


@pytest.mark.parametrize("block", [1, 3, 4, 5, 4096])
def test_played_merges_blocks_by_time_with_ties_in_file_order(tmp_path, monkeypatch, block):
    """Files of different lengths and intervals, with shared times, read a few ticks at a time:
    the same items, in the same order, as the tick-by-tick merge."""
    from rules_engine.replay import data

    monkeypatch.setattr(data, "_BLOCK", block)
    (tmp_path / "XBTUSD_1.csv").write_text("".join(f"{60 * n},10,12,9,11,1,1\n" for n in range(7)))
    (tmp_path / "ETHUSD_2.csv").write_text("".join(f"{120 * n},5,6,4,5,1,1\n" for n in range(5)))
    (tmp_path / "SOLUSD_1.csv").write_text("".join(f"{60 * n + 30},3,3,3,3,1,1\n" for n in range(2)))
    files = [open_data(tmp_path / name) for name in ("XBTUSD_1.csv", "ETHUSD_2.csv", "SOLUSD_1.csv")]
    items = list(played(files))
    assert [played_tick(item) for item in items] == list(merged_ticks(files))
    assert len(items) == 4 * (7 + 5 + 2)
    assert [(t, s) for t, s, *_ in items[:4]] == [(0.0, "XBTUSD"), (0.0, "ETHUSD"), (15.0, "XBTUSD"), (30.0, "XBTUSD")]
