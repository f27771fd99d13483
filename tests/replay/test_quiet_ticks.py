"""Deferred ticks change nothing: a replay through `feed_tick` (which defers candle ticks
inside the quiet band of their symbol and delivers the latest before anything else) fires,
fills and ends exactly as one that delivers every tick through the driver."""

import random
from decimal import Decimal

import pytest

from rules_engine.core.events import make_tick
from rules_engine.replay.data import candle_ticks, merged_ticks
from rules_engine.replay.describe import end_text, fill_text, outcome_text
from rules_engine.replay.reads import tick_reads
from rules_engine.replay.runner import OfflineRunner
from rules_engine.rules import load_rules_text

T0 = 1767225600.0
RULES = """\
version: 1
rules:
  - id: dip-buy
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69800, rearm: "0.1%"}]
    cooldown: 3m
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}]
  - id: rip-limit-sell
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70200}]
    when: "balance('XXBT') >= 0.01 and price_of('ETHUSD') > 0"
    actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: limit, volume: 0.01, price: "=price + 30",
               expire_after: 5m}]
  - id: held-bid
    triggers: [{type: price, symbol: ETHUSD, crosses_below: 2490}]
    for: 2m
    actions: [{type: place_order, pair: ETHUSD, side: buy, ordertype: limit, volume: 0.5, price: "=price - 3"}]
  - id: eth-stop
    triggers: [{type: price, symbol: ETHUSD, crosses_above: 2510}]
    actions: [{type: place_order, pair: ETHUSD, side: sell, ordertype: stop-loss, volume: 0.2, price: "=price - 6"}]
  - id: cross-read
    triggers: [{type: price, symbol: ETHUSD, field: mid, crosses_above: 2505, rearm: 2}]
    when: "price_of('XBTUSD') < 70100"
    actions: [{type: log, message: "eth {price}"}]
  - id: beat
    triggers: [{type: timer, every: 7m}]
    when: "price_of('XBTUSD') > 70000 and price_of('ETHUSD') > 2500"
    actions: [{type: log, message: "both high"}]
  - id: pull
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70350}]
    actions: [{type: cancel_all}]
"""


def walk(symbol, start, step, count, seed):
    rng = random.Random(seed)
    price, ticks = start, []
    for n in range(count):
        close = price + rng.gauss(0, step)
        high, low = max(price, close) + abs(rng.gauss(0, step / 3)), min(price, close) - abs(rng.gauss(0, step / 3))
        q = Decimal(10) ** -1
        candle = (T0 + 60 * n, Decimal(price).quantize(q), Decimal(high).quantize(q), Decimal(low).quantize(q),
                  Decimal(close).quantize(q))
        ticks.extend(candle_ticks(symbol, candle, 60.0))
        price = close
    return ticks


class _Files:
    def __init__(self, ticks):
        self._ticks = ticks

    def ticks(self, skipped=None):
        return iter(self._ticks)


def run(feed_all, ticks, rules=RULES, wallet=None):
    loaded = load_rules_text(rules)
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    runner = OfflineRunner(loaded.ruleset, start=T0, wallet=wallet or {"ZUSD": Decimal(100000), "XETH": Decimal(10)})
    feed = runner.feed if feed_all else runner.feed_tick
    delivered = []
    driver_feed = runner.driver.feed
    runner.driver.feed = lambda event, *rest: (delivered.append(event), driver_feed(event, *rest))[1]
    for tick in ticks:
        feed(tick)
    runner.finish(ticks[-1].time)
    story = []
    for o in runner.outcomes:
        story.append((o.time, o.rule_id, outcome_text(o), [(f.time, fill_text(f)) for f in o.fills],
                      [(e.time, end_text(e)) for e in o.ended]))
    tick_ids = {id(t) for t in ticks}
    ticks_delivered = sum(1 for e in delivered if id(e) in tick_ids)
    audit = [(r["kind"], r["rule_id"], r["data"]) for r in runner.audit.records]
    return story, runner.balances(), len(runner.open_orders()), ticks_delivered, audit


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holding_back_quiet_ticks_changes_nothing(seed):
    ticks = list(merged_ticks([_Files(walk("XBTUSD", 70000, 60, 400, seed)),
                               _Files(walk("ETHUSD", 2500, 4, 400, seed + 10))]))
    every, wallet, open_orders, delivered, audit = run(True, ticks)
    held, held_wallet, held_open, held_delivered, held_audit = run(False, ticks)
    assert delivered == len(ticks) and held_delivered < len(ticks) / 2  # most ticks were deferred
    assert len(every) > 20 and len({o[1] for o in every}) >= 4 and any(o[3] for o in every)  # fires and fills
    assert held == every
    assert (held_wallet, held_open) == (wallet, open_orders)
    assert any(kind == "state" and data.get("previous") == "cooling_down" for kind, _, data in audit)
    assert held_audit == audit  # the same records, in the same order


COOLDOWN_RULES = """\
version: 1
rules:
  - id: dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69950, rearm: "0.02%"}]
    cooldown: 5m
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}]
  - id: rip
    triggers: [{type: price, symbol: XBTUSD, crosses_above: 70050}]
    cooldown: 100s
    actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: market, volume: 0.01}]
  - id: eth-dip
    triggers: [{type: price, symbol: ETHUSD, crosses_below: 2498}]
    when: "price_of('XBTUSD') > 0"
    cooldown: 2m
    actions: [{type: place_order, pair: ETHUSD, side: buy, ordertype: market, volume: 0.1}]
"""


@pytest.mark.parametrize("seed", [4, 5])
def test_cooldowns_that_end_among_quiet_ticks_are_delivered_without_them(seed, monkeypatch):
    """With only market orders and cooldowns, a cooldown's end (which reads no price) is
    delivered at its time while the ticks held back wait: the same fires, fills and audit."""
    ended = []
    original = OfflineRunner._end_cooldowns
    monkeypatch.setattr(OfflineRunner, "_end_cooldowns", lambda self, t: (ended.append(t), original(self, t)))
    ticks = list(merged_ticks([_Files(walk("XBTUSD", 70000, 15, 400, seed)),
                               _Files(walk("ETHUSD", 2500, 3, 400, seed + 10))]))
    start = {"ZUSD": Decimal(100000), "XXBT": Decimal(1)}
    every, wallet, _, _, audit = run(True, ticks, COOLDOWN_RULES, start)
    assert not ended
    held, held_wallet, _, held_delivered, held_audit = run(False, ticks, COOLDOWN_RULES, start)
    assert ended and held_delivered < len(ticks) / 2
    assert sum(1 for o in every if o[3]) > 8  # fires that filled
    assert (held, held_wallet) == (every, wallet)
    assert held_audit == audit


FUTURES_RULES = """\
version: 1
rules:
  - id: fut-bid
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69900}]
    cooldown: 1h
    actions:
      - {type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: lmt, size: 0.01,
         limit_price: "=price - 100"}
"""


def test_ticks_are_not_held_back_while_a_paper_futures_order_rests():
    """Spot ticks move the paper Futures marks: a resting Futures limit order must see every
    price, so it fills at the same tick whether or not quiet ticks are deferred."""
    ticks = list(merged_ticks([_Files(walk("XBTUSD", 70000, 60, 300, 7))]))
    stories = []
    for feed_all in (True, False):
        loaded = load_rules_text(FUTURES_RULES)
        assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
        runner = OfflineRunner(loaded.ruleset, start=T0, wallet={"ZUSD": Decimal(1000)},
                               futures_wallet={"USD": Decimal(10000)})
        feed = runner.feed if feed_all else runner.feed_tick
        for tick in ticks:
            feed(tick)
        runner.finish(ticks[-1].time)
        futures = runner._futures.exchange
        orders = [(o.cli_ord_id, o.status, o.updated, str(o.filled)) for o in futures.orders.values()]
        stories.append(([(o.time, o.rule_id, outcome_text(o)) for o in runner.outcomes], orders,
                        [(p.symbol, str(p.size), str(p.price)) for p in futures.positions(runner._futures.account)]))
    fired, orders, positions = stories[0]
    assert any(status == "filled" for _, status, _, _ in orders) and positions, "the walk fills the resting bid"
    assert stories[1] == stories[0]


CROSS_RULES = """\
version: 1
rules:
  - id: xbt-dip
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69950, rearm: "0.02%"}]
    cooldown: 2m
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}]
  - id: eth-rip-sells-xbt
    triggers: [{type: price, symbol: ETHUSD, crosses_above: 2502, rearm: "0.02%"}]
    cooldown: 2m
    actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: market, volume: 0.01}]
  - id: sol-dip
    triggers: [{type: price, symbol: SOLUSD, crosses_below: 149.5, rearm: "0.05%"}]
    actions: [{type: log, message: "sol {price}"}]
  - id: sol-rip-bids-xbt
    triggers: [{type: price, symbol: SOLUSD, crosses_above: 150.3, rearm: "0.05%"}]
    cooldown: 3m
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 69900,
               expire_after: 20m}]
"""


def test_tick_reads_name_what_the_rules_a_tick_can_fire_may_read():
    loaded = load_rules_text(CROSS_RULES + RULES.removeprefix("version: 1\nrules:\n"))
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    reads = tick_reads(loaded.ruleset)
    assert reads["SOLUSD"] == {"SOLUSD", "XBTUSD"}
    assert reads["XBTUSD"] is None  # rip-limit-sell reads price_of('ETHUSD')
    assert reads["ETHUSD"] is None  # cross-read reads price_of('XBTUSD')
    loaded = load_rules_text(CROSS_RULES)
    assert tick_reads(loaded.ruleset) == {"XBTUSD": {"XBTUSD"}, "ETHUSD": {"ETHUSD", "XBTUSD"},
                                          "SOLUSD": {"SOLUSD", "XBTUSD"}}
    assert tick_reads(load_rules_text(FUTURES_RULES).ruleset) == {"XBTUSD": None}


@pytest.mark.parametrize("seed", [8, 11])
def test_a_tick_waits_only_for_the_held_ticks_its_rules_may_read(seed, monkeypatch):
    """A fire releases only the held ticks of the symbols its rules read (an ETHUSD rule
    that sells XBTUSD at market fills at the latest XBTUSD price), and keeps the quiet bands
    of the symbols it neither ticked nor traded (a SOLUSD rule's resting XBTUSD bid narrows
    XBTUSD's): the same fires, fills, wallet and audit as delivering every tick."""
    released = []
    original = OfflineRunner._release
    monkeypatch.setattr(OfflineRunner, "_release",
                        lambda self, symbols=None: (released.append(symbols), original(self, symbols)))
    ticks = list(merged_ticks([_Files(walk("XBTUSD", 70000, 15, 400, seed)),
                               _Files(walk("ETHUSD", 2500, 1.5, 400, seed + 10)),
                               _Files(walk("SOLUSD", 150, 0.1, 400, seed + 20))]))
    start = {"ZUSD": Decimal(100000), "XXBT": Decimal(1)}
    every, wallet, _, _, audit = run(True, ticks, CROSS_RULES, start)
    held, held_wallet, _, held_delivered, held_audit = run(False, ticks, CROSS_RULES, start)
    assert held_delivered < len(ticks) / 2
    assert sum(1 for o in every if o[3] and o[1] == "eth-rip-sells-xbt") > 3  # cross-pair fills
    assert any(o[3][0][0] > o[0] for o in every if o[1] == "sol-rip-bids-xbt" and o[3])  # a cross-pair bid rested, then filled
    assert {frozenset(s) for s in released if s is not None} >= {
        frozenset({"XBTUSD"}), frozenset({"ETHUSD", "XBTUSD"}), frozenset({"SOLUSD", "XBTUSD"})}
    assert (held, held_wallet) == (every, wallet)
    assert held_audit == audit


MID_RULES = """\
version: 1
rules:
  - id: xbt-mid
    triggers: [{type: price, symbol: XBTUSD, field: mid, crosses_above: 70020, rearm: "0.01%"}]
    actions: [{type: log, message: "mid {price} last {last}"}]
  - id: xbt-last
    triggers: [{type: price, symbol: XBTUSD, crosses_below: 69980, rearm: "0.01%"}]
    actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}]
"""


def test_a_recorded_tick_without_a_last_price_does_not_supersede_a_deferred_one():
    """Book ticks (best bid and ask, no last) among candle ticks of the same pair: the candle
    tick deferred before a book tick still sets the last price its fire reads (`{last}`)."""
    candles = walk("XBTUSD", 70000, 15, 300, 21)
    rng = random.Random(5)
    books = []
    for n in range(0, len(candles), 3):
        mid = candles[n].last + Decimal(rng.randint(-8, 8))
        books.append(make_tick("XBTUSD", "spot", candles[n].time + 7.0, None, mid - 1, mid + 1, None))
    ticks = sorted(candles + books, key=lambda t: t.time)
    start = {"ZUSD": Decimal(100000)}
    every, wallet, _, _, audit = run(True, ticks, MID_RULES, start)
    held, held_wallet, _, held_delivered, held_audit = run(False, ticks, MID_RULES, start)
    assert held_delivered < len(ticks) * 0.8
    assert sum(1 for o in every if o[1] == "xbt-mid") > 5
    assert (held, held_wallet) == (every, wallet)
    assert held_audit == audit
