"""Engine core throughput: `python -m bench.engine_core`.

(a) Per-tick cost with 100,000 crossing levels on one symbol against 100 levels. Both books
    hold the same 100 levels inside the range the price walks (so both see the same
    crossings, fires and intents); the large book adds 99,900 levels outside that range.
    A sorted index makes the cost depend on the levels crossed, not the levels held.
(b) Ticks per second through `Engine.handle` with 1,000 price rules over 50 symbols.
(c) An order-placing crossing with no resting orders and with 2,000 (risk limits on): the
    risk check reads a running total, so the cost does not grow with the open orders.

Ticks are a seeded random walk; every fire runs one `log` action, so the figures include
gating, firing, running actions and building the trace.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

from rules_engine.actions.log import LogAction
from rules_engine.core import Engine, RiskLimits, model
from rules_engine.core.events import ActionResult, Tick
from rules_engine.expr import compile_template
from rules_engine.registry import names_for_triggers
from rules_engine.rules import load_rules
from rules_engine.triggers.price import PriceTrigger

TICKS = 20_000

Level = tuple[str, Decimal, Literal["above", "below"]]


def _rules(levels: list[Level]) -> model.RuleSet:
    text = "crossed {price}"
    message = model.Template(text, compile_template(text, names_for_triggers(["price"])))
    action = (LogAction(message),)
    rules = []
    for n, (symbol, level, direction) in enumerate(levels):
        trigger = PriceTrigger(symbol=symbol, market=model.Market.SPOT, field="last",
                               direction=direction, level=level)
        rules.append(model.Rule(id=f"r{n}", triggers=(trigger,), actions=action))
    return model.RuleSet(tuple(rules))


def _walk(rng: random.Random, symbols: list[str], start: dict[str, Decimal], low: Decimal, high: Decimal,
          count: int) -> list[Tick]:
    prices = dict(start)
    ticks = []
    for n in range(count):
        symbol = symbols[n % len(symbols)] if len(symbols) == 1 else rng.choice(symbols)
        step = Decimal(rng.randint(-50, 50)) / 100
        value = min(max(prices[symbol] + step, low), high)
        prices[symbol] = value
        ticks.append(Tick(symbol=symbol, market="spot", time=1.0 + n * 0.001, last=value))
    return ticks


def _per_tick(engine: Engine, ticks: list[Tick]) -> tuple[float, int]:
    intents = 0
    started = time.perf_counter()
    for tick in ticks:
        intents += len(engine.handle(tick).intents)
    return (time.perf_counter() - started) / len(ticks), intents


def levels_figure() -> tuple[float, float]:
    near: list[Level] = [("XBTUSD", Decimal(1000 + n), "above" if n % 2 else "below") for n in range(100)]
    far: list[Level] = [("XBTUSD", Decimal(2000) + Decimal(n) / 10 if n % 2 else Decimal(500) - Decimal(n) / 1000,
            "above" if n % 4 < 2 else "below") for n in range(99_900)]
    results = []
    for levels in (near, near + far):
        ticks = _walk(random.Random(7), ["XBTUSD"], {"XBTUSD": Decimal("1050.00")}, Decimal(990), Decimal(1110),
                      TICKS)
        build = time.perf_counter()
        engine = Engine(_rules(levels))
        engine.handle(ticks[0])  # first observation arms every level: one-off O(levels)
        setup = time.perf_counter() - build
        cost, intents = _per_tick(engine, ticks[1:])
        results.append(cost)
        print(f"  {len(levels):>7,} levels: {cost * 1e6:8.2f} us/tick over {len(ticks) - 1:,} ticks "
              f"({intents:,} fires; load + first observation {setup:.2f} s)")
    small, large = results
    print(f"  ratio 100,000 / 100 levels: {large / small:.2f}x (target: within 3x)")
    return small, large


def throughput_figure() -> float:
    symbols = [f"SYM{n:02d}USD" for n in range(50)]
    rng = random.Random(11)
    levels: list[Level] = [(symbols[n % 50], Decimal(100) + Decimal(rng.randint(-500, 500)) / 100,
               "above" if n % 2 else "below") for n in range(1000)]
    ticks = _walk(random.Random(13), symbols, dict.fromkeys(symbols, Decimal(100)), Decimal(90), Decimal(110),
                  TICKS * 5)
    engine = Engine(_rules(levels))
    for symbol in symbols:
        engine.handle(Tick(symbol=symbol, market="spot", time=0.5, last=Decimal(100)))
    cost, intents = _per_tick(engine, ticks)
    rate = 1 / cost
    print(f"  1,000 price rules over 50 symbols: {rate:,.0f} ticks/s ({cost * 1e6:.2f} us/tick, "
          f"{len(ticks):,} ticks, {intents:,} fires)")
    return rate


RESTING_RULES = """version: 1
rules:
  - id: flip
    mode: queued
    triggers:
      - {type: price, symbol: XBTUSD, crosses_above: 70000}
      - {type: price, symbol: XBTUSD, crosses_below: 69000}
    actions:
      - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.0001, price: 1000}
"""


def resting_orders_figure(resting: int = 2000) -> tuple[float, float]:
    """An order-placing crossing's cost with no resting orders and with `resting` of them,
    risk limits on (total notional, open orders): each accepted order stays open."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(RESTING_RULES)
        loaded = load_rules([path])
    assert loaded.ruleset is not None, loaded.errors
    limits = RiskLimits(max_total_notional=Decimal(10) ** 12, max_open_orders=10**6)
    engine = Engine(loaded.ruleset, limits, installation="0123456789abcdef0123456789abcdef")
    engine.handle(Tick(symbol="XBTUSD", market="spot", time=1.0, last=Decimal(69500)))
    costs = []
    for n in range(resting + 200):
        price = Decimal(70100) if n % 2 == 0 else Decimal(68900)
        tick = Tick(symbol="XBTUSD", market="spot", time=2.0 + n, last=price)
        started = time.perf_counter()
        decision = engine.handle(tick)
        costs.append(time.perf_counter() - started)
        for intent in decision.intents:
            engine.handle(ActionResult(intent.intent_id, True, 2.5 + n, {"txid": [f"O{n}"]}))
    first, last = statistics.median(costs[:200]), statistics.median(costs[-200:])
    print(f"  an order-placing crossing: {first * 1e6:.1f} us with under 200 resting orders, {last * 1e6:.1f} us "
          f"with {resting:,} (medians of 200); ratio {last / first:.2f}x (target: within 1.5x)")
    return first, last


def main() -> None:
    print("(a) per-tick cost against the number of levels on one symbol")
    levels_figure()
    print("(b) throughput")
    throughput_figure()
    print("(c) against the number of resting orders (risk limits on)")
    resting_orders_figure()


if __name__ == "__main__":
    main()
