"""Price sources: the seeded random walk and replays of Kraken CSV and recorded frames."""

import json
from decimal import Decimal as D

import pytest
from sim_support import KEY, make_sim
from websockets.sync.client import connect

from rules_engine.pairs import default_registry
from rules_engine.replay.data import open_data
from rules_engine.sim.prices import RandomWalk, open_replay, replay_events

PAIRS = default_registry()


def walk_prices(seed, steps=20):
    walk, prices = RandomWalk(PAIRS, seed=seed, interval=0.5, volatility=0.01), {"XBTUSD": D("60000"), "XDGUSD": D("0.12")}
    for _ in range(steps):
        step = walk.next_step(prices)
        assert step.delay == 0.5
        prices.update({p.symbol: p.price for p in step.points})
    return prices


def test_random_walk_is_seeded_and_on_the_tick_grid():
    assert walk_prices(1) == walk_prices(1)
    assert walk_prices(1) != walk_prices(2)
    prices = walk_prices(3)
    assert prices["XBTUSD"] % D("0.1") == 0 and prices["XDGUSD"] % D("0.0000001") == 0
    assert prices["XBTUSD"] != D("60000")


def test_simulator_step_applies_the_walk_deterministically(clock):
    first, second = make_sim(clock, seed=9), make_sim(clock, seed=9)
    assert first.step(5) == 5 and second.step(5) == 5
    assert first.market.prices() == second.market.prices()
    assert first.market.price("XBTUSD") != D("60000")


def test_ohlcvt_csv_plays_each_candle_through_its_range(tmp_path):
    path = tmp_path / "XBTUSD_1.csv"
    path.write_text("1700000000,100.0,110.0,95.0,105.0,8.0,12\n1700000060,105.0,106.0,90.0,91.0,4.0,3\n")
    events = replay_events(open_data(path, registry=PAIRS), PAIRS)
    assert [(t - 1700000000, e.price) for t, e in events] == [
        (0, D("100.0")), (15, D("95.0")), (30, D("110.0")), (45, D("105.0")),  # up candle: low first
        (60, D("105.0")), (75, D("106.0")), (90, D("90.0")), (105, D("91.0")),  # down candle: high first
    ]
    assert events[0][1].volume == D("2.0")


def test_ohlc_csv_with_header_and_bad_rows(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("time,open,high,low,close\n1700000000,1,2,0.5,1.5\n")
    replay = open_replay([path], PAIRS, pair="ETHUSD")
    assert len(replay) == 4 and replay.next_step({}).points[0].symbol == "ETHUSD"
    bad = tmp_path / "XBTUSD_5.csv"
    bad.write_text("1700000000,1,2,x,1\n")
    with pytest.raises(ValueError, match="XBTUSD_5.csv:1: low 'x' is not a number"):
        open_replay([bad], PAIRS)
    with pytest.raises(ValueError, match="unknown Kraken pair 'prices'.* or pass --replay-pair"):
        open_replay([tmp_path / "prices.csv"], PAIRS)


def test_recorded_frames_jsonl(tmp_path):
    path = tmp_path / "frames.jsonl"
    lines = [
        {"channel": "heartbeat"},
        {"channel": "ticker", "type": "update",
         "data": [{"symbol": "BTC/USD", "last": 60100.5, "timestamp": "2026-01-01T00:00:00.000000Z"}]},
        [340, {"c": ["60200.1", "0.1"]}, "ticker", "XBT/USD"],
        {"feed": "ticker", "product_id": "PF_ETHUSD", "last": 3001.5, "time": 1767225605000},
        {"time": 1767225610.0, "frame": {"channel": "ticker", "type": "update", "data": [{"symbol": "SOL/USD", "last": 150.25}]}},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    events = replay_events(open_data(path, registry=PAIRS), PAIRS)
    assert [(e.symbol, e.price) for _, e in events] == [
        ("XBTUSD", D("60100.5")), ("XBTUSD", D("60200.1")), ("ETHUSD", D("3001.5")), ("SOLUSD", D("150.25"))]
    assert [t - 1767225600 for t, _ in events] == [0.0, 1.0, 5.0, 10.0]
    path.write_text('{"channel": "ticker", "data": [{"symbol": "BTC/USD"}]}\nnot json\n')
    with pytest.raises(ValueError, match="frames.jsonl:1: malformed v2 frame"):
        open_replay([path], PAIRS)


def test_candles_play_over_their_interval_even_across_a_gap(tmp_path):
    path = tmp_path / "XBTUSD_1.csv"  # one-minute candles, the next one three minutes later
    path.write_text("1700000000,100,110,95,105,8,12\n1700000180,105,106,90,91,4,3\n")
    replay = open_replay([path], PAIRS)
    delays = [replay.next_step({}).delay for _ in range(len(replay))]
    assert delays == [0.0, 15.0, 15.0, 15.0, 135.0, 15.0, 15.0, 15.0]


def test_recorded_frames_without_any_time_start_at_zero_one_second_apart(tmp_path):
    path = tmp_path / "frames.jsonl"
    path.write_text('[340, {"c": ["60200.1", "0.1"]}, "ticker", "XBT/USD"]\n'
                    '[341, {"b": ["3000.0", "1", "1.0"], "a": ["3001.0", "1", "1.0"]}, "ticker", "ETH/USD"]\n')
    events = replay_events(open_data(path, registry=PAIRS), PAIRS)
    assert [(t, e.symbol, e.price) for t, e in events] == [(0.0, "XBTUSD", D("60200.1")), (1.0, "ETHUSD", D("3000.5"))]


def test_replay_drives_the_simulator_and_fills_resting_orders(tmp_path, clock):
    path = tmp_path / "XBTUSD_1.csv"
    path.write_text("1700000000,60000.0,60100.0,58900.0,59500.0,1,1\n")
    sim = make_sim(clock, replay=[str(path)])
    from rules_engine.sim import OrderRequest

    order, _ = sim.exchange.place(KEY, OrderRequest("XBTUSD", "buy", "limit", D("0.01"), price=D("59000")), clock())
    assert sim.step(2) == 2 and order.is_open  # a down candle: open, then the high
    assert sim.step(1) == 1  # the low, 58900, reaches the order
    assert order.status == "closed" and order.avg_price == D("59000")
    assert sim.step(10) == 1 and sim.market.price("XBTUSD") == D("59500.0")  # the replay ends, the price holds


def test_random_walk_moves_prices_on_its_own(clock):
    sim = make_sim(clock, tick_interval=0.02)
    with sim.running() as endpoints, connect(endpoints.ws_v2) as ws:
        ws.recv(timeout=2)
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD"]}}))
        while True:
            frame = json.loads(ws.recv(timeout=2))
            if frame.get("type") == "update":
                break
    assert frame["data"][0]["symbol"] == "BTC/USD"
