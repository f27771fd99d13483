"""The backtest accounts of a replay, checked against figures worked out by hand: order
counts (placed, filled, expired, cancelled), fees, FIFO trades with realised and marked PnL,
equity, drawdown, exposure, balances after fills, errors with file:line, and a memory that
does not hold the fires."""

import json
from decimal import Decimal

import jsonschema
import pytest

from rules_engine.replay.data import open_data
from rules_engine.replay.replay import run_replay
from rules_engine.replay.report import report_json
from rules_engine.rules import load_rules_text

D = Decimal
T0 = 1767225600
TAKER = D("0.004")  # the paper exchange's default taker fee on XBTUSD
MAKER = D("0.0025")


def candles(tmp_path, closes, name="XBTUSD_1.csv"):
    """Flat one-minute candles (open = high = low = close): one price per minute."""
    path = tmp_path / name
    path.write_text("".join(f"{T0 + 60 * n},{c},{c},{c},{c},1,1\n" for n, c in enumerate(closes)))
    return open_data(path)


def replay(tmp_path, rules_text, closes, **options):
    loaded = load_rules_text("version: 1\nrules:\n" + rules_text, filename="bt.yaml")
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    return run_replay(loaded.ruleset, [candles(tmp_path, closes)], wallet=options.pop("wallet", {"ZUSD": D(10000)}),
                      **options)


ROUND_TRIP = """\
  - id: buy-low
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 95}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 2}]
  - id: sell-high
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 105}]
    actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: limit, volume: 1, price: "=price + 5"}]
"""


def test_a_round_trip_is_a_trade_with_its_fees_and_the_rest_is_marked_at_the_last_price(tmp_path):
    # 100, falls to 90 (buy 2 at market), rises to 110 (a sell of 1 rests at 115), 120 fills it, ends at 118
    result = replay(tmp_path, ROUND_TRIP, [100, 90, 100, 110, 120, 118])
    ledger = result.ledger
    buy_fee = 2 * D(90) * TAKER
    sell_fee = 1 * D(115) * MAKER
    (trade,) = list(ledger.trades.rows())
    assert trade["direction"] == "long" and trade["entry_rule"] == "buy-low" and trade["exit_rule"] == "sell-high"
    assert (D(trade["entry_price"]), D(trade["exit_price"]), D(trade["size"])) == (90, 115, 1)
    assert D(trade["fee"]) == buy_fee / 2 + sell_fee
    realised = (D(115) - D(90)) - buy_fee / 2 - sell_fee
    assert D(trade["pnl"]) == realised
    unrealised = (D(118) - D(90)) - buy_fee / 2
    totals = ledger.totals(result.period)
    assert D(totals["realised_pnl"]["ZUSD"]) == realised.quantize(D("1e-8"))
    assert D(totals["unrealised_pnl"]["ZUSD"]) == unrealised.quantize(D("1e-8"))
    assert D(totals["fees"]["ZUSD"]) == buy_fee + sell_fee
    # the wallet held only USD: what the rules made is exactly the change in equity
    assert totals["equity_start"] == 10000
    assert totals["equity_end"] == pytest.approx(float(10000 + realised + unrealised), abs=1e-6)
    assert totals["return"] == pytest.approx(float(realised + unrealised) / 10000, abs=1e-9)
    assert totals["orders"] == {"placed": 2, "filled": 2, "partially_filled": 0, "expired": 0, "cancelled": 0}
    books = {b.rule_id: b.to_dict(result.period) for b in ledger.books.values()}
    assert D(books["buy-low"]["realised_pnl"]["ZUSD"]) == realised.quantize(D("1e-8"))  # the opener's trade
    assert books["sell-high"]["realised_pnl"] == {} and books["sell-high"]["fills"] == 1
    # exposure: a lot is open from the buy (minute 1) to the end; sell-high opened none
    # (the last candle's last tick is at 5m45s)
    assert totals["exposure_seconds"] == 285 and books["buy-low"]["exposure_seconds"] == 285
    assert books["sell-high"]["exposure_seconds"] == 0


def test_balances_after_a_fire_are_taken_after_its_order_filled(tmp_path):
    result = replay(tmp_path, ROUND_TRIP, [100, 90, 100, 110, 120, 118])
    fires = {f["rule"]: f for f in result.ledger.fires.rows()}
    sell = fires["sell-high"]
    assert sell["time"] == T0 + 180 and sell["fills"][0]["time"] == T0 + 240  # fired at 110, filled at 120
    assert D(sell["balances_after"]["XXBT"]) == 1  # 2 bought, 1 sold: after the fill, not at the fire
    assert [f["rule"] for f in result.ledger.fires.rows()] == ["buy-low", "sell-high"]  # in time order


def test_the_drawdown_is_the_largest_fall_of_equity_from_its_peak(tmp_path):
    # buy 2 at 90; the equity peaks at 110 and falls to 80 before recovering
    rules = """\
  - id: buy-low
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 95}]
    cooldown: 1h
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 2}]
"""
    result = replay(tmp_path, rules, [100, 90, 110, 80, 100])
    totals = result.ledger.totals(result.period)
    fee = 2 * 90 * 0.004
    peak = 10000 - 180 - fee + 2 * 110
    trough = 10000 - 180 - fee + 2 * 80
    assert totals["max_drawdown"] == pytest.approx(peak - trough)
    assert totals["max_drawdown_pct"] == pytest.approx((peak - trough) / peak)
    assert result.ledger.books["buy-low"].max_drawdown == pytest.approx(60.0)
    curve = result.ledger.curve()
    assert curve[0] == (T0, 10000.0) and curve[-1][1] == pytest.approx(10000 - 180 - fee + 200)


def test_expired_and_cancelled_orders_are_counted_and_shown(tmp_path):
    rules = """\
  - id: bid
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 95}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: "=price - 50",
               expire_after: 2m}]
  - id: ask
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 105}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 50}]
  - id: pull
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 115}]
    actions: [{type: cancel_all}]
"""
    result = replay(tmp_path, rules, [100, 90, 90, 90, 90, 110, 120, 120])
    totals = result.ledger.totals(result.period)
    assert totals["orders"] == {"placed": 2, "filled": 0, "partially_filled": 0, "expired": 1, "cancelled": 1}
    books = result.ledger.books
    assert (books["bid"].expired, books["ask"].cancelled) == (1, 1)
    fires = {f["rule"]: f for f in result.ledger.fires.rows()}
    assert fires["bid"]["ended"] == [{"time": T0 + 60 + 120, "txid": fires["bid"]["ended"][0]["txid"],
                                      "status": "expired", "filled": "0"}]
    segments = {s["rule"]: s for s in result.ledger.orders.rows()}
    assert (segments["bid"]["placed"], segments["bid"]["end"], segments["bid"]["status"]) == (
        T0 + 60, T0 + 180, "expired")
    assert (segments["ask"]["end"], segments["ask"]["status"]) == (T0 + 360, "cancelled")


def test_an_order_still_resting_at_the_end_is_drawn_to_the_end(tmp_path):
    rules = """\
  - id: bid
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 95}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 50}]
"""
    result = replay(tmp_path, rules, [100, 90, 91])
    (segment,) = result.ledger.orders.rows()
    assert (segment["placed"], segment["end"], segment["status"]) == (T0 + 60, T0 + 165, "open")
    assert result.open_orders == 1


def test_rule_errors_are_reported_with_their_reason_and_where_the_rule_is(tmp_path):
    rules = """\
  - id: broken
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 105}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=1 / (price - price)"}]
"""
    result = replay(tmp_path, rules, [100, 110, 100, 110])
    where = "bt.yaml:5 (actions[0].volume)"  # the action's line and field
    assert [(e["rule"], e["where"], e["by"]) for e in result.ledger.errors] == [("broken", where, "error")] * 2
    assert "division by zero" in result.ledger.errors[0]["reason"]
    assert result.ledger.books["broken"].errors == 2


def test_the_json_report_follows_its_schema(tmp_path):
    result = replay(tmp_path, ROUND_TRIP, [100, 90, 100, 110, 120, 118])
    document = report_json(result, "chart.png")
    schema = json.loads((__import__("pathlib").Path(__file__).resolve().parents[2] / "schemas" /
                         "replay-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)
    assert [t["entry_rule"] for t in document["trades"]] == ["buy-low"]
    assert document["totals"]["orders"]["filled"] == 2 and document["equity_curve"][0]["equity"] == 10000


def test_a_replay_keeps_no_fire_in_memory(tmp_path):
    rules = """\
  - id: often
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 100}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.001}]
"""
    result = replay(tmp_path, rules, [99, 101] * 200, wallet={"ZUSD": D(10) ** 6})
    assert result.fire_count == 400 // 2 == result.ledger.fires.count
    assert result.ledger._pending == type(result.ledger._pending)() and not result.ledger._waiting
    assert sum(1 for _ in result.ledger.fires.rows()) == 200


def test_assets_without_a_price_in_the_valuation_currency_are_named(tmp_path):
    result = replay(tmp_path, ROUND_TRIP, [100, 90, 100, 110, 120, 118],
                    wallet={"ZUSD": D(10000), "XETH": D(2)})
    totals = result.ledger.totals(result.period)
    assert totals["valuation"] == "ZUSD" and totals["not_valued"] == ["XETH"]
    assert totals["equity_start"] == 10000  # ETH has no USD price in the data: left out, and said so


def test_holdings_from_the_start_count_at_their_first_price_and_their_price_change_is_not_pnl(tmp_path):
    result = replay(tmp_path, ROUND_TRIP, [100, 90, 100, 110, 120, 118], wallet={"ZUSD": D(10000), "XXBT": D(3)})
    totals = result.ledger.totals(result.period)
    assert totals["equity_start"] == pytest.approx(10000 + 3 * 100)
    pnl = float(D(totals["pnl"]["ZUSD"]))
    assert totals["equity_end"] == pytest.approx(totals["equity_start"] + pnl + 3 * (118 - 100))


def test_the_ledger_figures_the_same_tick_by_tick_and_over_runs_of_ticks(tmp_path):
    """`Ledger.prices` (replay's hot path, locals between fills) keeps exactly the figures of
    `Ledger.price` called tick by tick: equity, peak, drawdown, the curve and each rule's drawdown."""
    import random

    from rules_engine.pairs import default_registry
    from rules_engine.replay.backtest import Ledger
    from rules_engine.replay.outcomes import FillRecord

    rng = random.Random(3)
    prices = {"XBTUSD": 70000.0, "ETHUSD": 2500.0, "NOPEUSD": 1.0}
    ticks = []
    for n in range(30000):
        symbol = rng.choice(list(prices))
        prices[symbol] *= 1 + rng.gauss(0, 0.002)
        ticks.append((T0 + n, symbol, prices[symbol], None, None))
    wallet = {"ZUSD": D(100000), "XXBT": D(2), "XETH": D(0)}
    ledgers = [Ledger(["r"], default_registry(), tmp_path / str(n)) for n in range(2)]
    for ledger in ledgers:
        ledger.start(wallet)
    for cut in range(0, len(ticks), 2500):  # a fill between runs of ticks
        run = ticks[cut:cut + 2500]
        for time, symbol, price, _, _ in run:
            ledgers[0].price(symbol, price, time)
        ledgers[1].prices(run)
        time = run[-1][0]
        fill = FillRecord(time, f"O{cut}", None, "ETHUSD", "buy", "market", D("0.5"), D(2500), D("5"), "r", None,
                          {**wallet, "XETH": D("0.5") * (cut // 2500 + 1)}, "ZUSD")
        for ledger in ledgers:
            ledger.filled(fill)
    a, b = ledgers
    assert a.max_drawdown > 0 and len(a.curve_times) > 100
    assert (a.equity, a.peak, a.max_drawdown, a.max_drawdown_pct) == (b.equity, b.peak, b.max_drawdown,
                                                                      b.max_drawdown_pct)
    assert a.curve() == b.curve()
    assert a.books["r"].max_drawdown == b.books["r"].max_drawdown
