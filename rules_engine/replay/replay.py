"""A replay: rules run in dry-run over recorded market data, through the offline loop.

    files = [open_data("XBTUSD_60.csv")]
    result = run_replay(load_rules(["rules/"]).ruleset, files, wallet={"ZUSD": Decimal(10000)})
    print(render_text(result))

`ReplayResult` keeps every outcome and fill, and each symbol's price series (as floats, for
the chart only); the report modules render it as text, Markdown, JSON and a PNG.
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rules_engine.core import PlaceOrder, RiskLimits
from rules_engine.core.decimals import plain
from rules_engine.core.events import Tick
from rules_engine.core.model import RuleSet
from rules_engine.needs import rule_needs
from rules_engine.replay.data import DataError, DataFile, merged_ticks
from rules_engine.replay.outcomes import FillRecord, Outcome
from rules_engine.replay.runner import OfflineRunner

ProgressWrapper = Callable[[Iterator[Tick], int], Iterable[Tick]]


@dataclass
class PriceSeries:
    """One symbol's prices over time (floats: they only draw the chart)."""

    times: array = field(default_factory=lambda: array("d"))
    prices: array = field(default_factory=lambda: array("d"))


@dataclass
class ReplayResult:
    rule_files: tuple[str, ...]
    data: list[DataFile]
    start: float
    end: float
    ticks: int
    wallet_start: dict[str, Decimal]
    wallet_end: dict[str, Decimal]
    open_orders: int
    outcomes: list[Outcome]
    fills: list[FillRecord]
    prices: dict[str, PriceSeries]
    fire_symbols: dict[int, tuple[str | None, Decimal | None]] = field(default_factory=dict)
    # Ticks not played because no rule watches their pair (by symbol; a recorded pair that
    # AssetPairs does not list is counted by its wire name).
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def fires(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.fired]

    def where(self, outcome: Outcome) -> tuple[str | None, Decimal | None]:
        """The symbol and price a fire is drawn at (the trigger's, else the order's market)."""
        return self.fire_symbols.get(id(outcome), (None, None))


def run_replay(
    ruleset: RuleSet,
    data: list[DataFile],
    *,
    wallet: Mapping[str, Decimal] | None = None,
    limits: RiskLimits | None = None,
    timers: bool = True,
    balance_max_age: float = 10.0,
    progress: ProgressWrapper | None = None,
    state_dir: str | Path | None = None,
) -> ReplayResult:
    """Replay the data files' ticks, merged by time, through the rules; ticks of pairs no rule
    watches (triggers, orders, `price_of`) are skipped and counted. Raises `DataError`
    for unusable data (nothing is half-reported). `state_dir` keeps the run's state store and
    audit log (`audit.jsonl`, the same records a dry run writes) instead of discarding them."""
    ticks = merged_ticks(data)
    first = next(ticks, None)
    if first is None:
        raise DataError("the data files hold no ticks")
    stream: Iterable[Tick] = itertools.chain([first], ticks)
    if progress is not None:
        stream = progress(iter(stream), sum(f.estimate() for f in data))
    needs = rule_needs(ruleset)
    watched = needs.spot_symbols | needs.futures_symbols
    skipped: Counter[str] = Counter()
    last_price: dict[str, Decimal] = {}
    fire_symbols: dict[int, tuple[str | None, Decimal | None]] = {}

    def placed(outcome: Outcome) -> None:
        if not outcome.fired:
            return
        symbol = outcome.context.get("symbol")
        price = outcome.price
        if symbol is None:
            orders = [i.pair for i in outcome.intents if isinstance(i, PlaceOrder)]
            symbol = orders[0] if orders else (next(iter(last_price)) if last_price else None)
        if price is None and symbol is not None:
            price = last_price.get(symbol)
        fire_symbols[id(outcome)] = (symbol, price)

    runner = OfflineRunner(ruleset, start=first.time, wallet=wallet, limits=limits, timers=timers,
                           balance_max_age=balance_max_age, on_outcome=placed, state_dir=state_dir)
    try:
        wallet_start = runner.balances()
        series: dict[str, PriceSeries] = {}
        count = 0
        end = first.time
        for tick in stream:
            if tick.symbol not in watched:
                skipped[tick.symbol] += 1
                continue
            price = tick.last if tick.last is not None else tick.mid
            if price is not None:
                last_price[tick.symbol] = price
                line = series.get(tick.symbol)
                if line is None:
                    line = series[tick.symbol] = PriceSeries()
                line.times.append(tick.time)
                line.prices.append(float(price))
            runner.feed(tick)
            count += 1
            if tick.time > end:
                end = tick.time
        runner.finish(end)
        for file in data:
            skipped.update(file.unknown_pairs)
        return ReplayResult(
            rule_files=ruleset.files,
            data=data,
            start=first.time,
            end=end,
            ticks=count,
            wallet_start=wallet_start,
            wallet_end=runner.balances(),
            open_orders=len(runner.open_orders()),
            outcomes=runner.outcomes,
            fills=runner.fills,
            prices=series,
            fire_symbols=fire_symbols,
            skipped=dict(sorted(skipped.items())),
        )
    finally:
        runner.close()


@dataclass
class RuleSummary:
    rule_id: str
    fires: int = 0
    completed: int = 0
    stopped: dict[str, int] = field(default_factory=dict)  # by block kind
    not_fired: dict[str, int] = field(default_factory=dict)  # by block kind
    orders: int = 0
    fills: int = 0
    bought: dict[str, Decimal] = field(default_factory=dict)  # base volume by pair
    sold: dict[str, Decimal] = field(default_factory=dict)
    fees: dict[str, Decimal] = field(default_factory=dict)  # by pair, in its fee currency

    def to_dict(self) -> dict[str, Any]:
        def amounts(values: dict[str, Decimal]) -> dict[str, str]:
            return {pair: plain(amount) for pair, amount in sorted(values.items())}

        return {
            "rule": self.rule_id, "fires": self.fires, "completed": self.completed, "stopped": self.stopped,
            "not_fired": self.not_fired, "orders": self.orders, "fills": self.fills,
            "bought": amounts(self.bought), "sold": amounts(self.sold), "fees": amounts(self.fees),
        }


def summarize(result: ReplayResult, rule_ids: Iterable[str]) -> list[RuleSummary]:
    """Per rule, in rule order: fires, how runs ended, what held the rule back, orders and fills."""
    summaries = {rule_id: RuleSummary(rule_id) for rule_id in rule_ids}
    for outcome in result.outcomes:
        summary = summaries.setdefault(outcome.rule_id, RuleSummary(outcome.rule_id))
        if not outcome.fired:
            kind = outcome.block.by if outcome.block else "unknown"
            summary.not_fired[kind] = summary.not_fired.get(kind, 0) + 1
            continue
        summary.fires += 1
        if outcome.block is not None:
            summary.stopped[outcome.block.by] = summary.stopped.get(outcome.block.by, 0) + 1
        elif outcome.status == "completed":
            summary.completed += 1
        summary.orders += sum(1 for i in outcome.intents if i.kind in ("place_order", "futures_send_order"))
        for fill in outcome.fills:
            summary.fills += 1
            summary.fees[fill.pair] = summary.fees.get(fill.pair, Decimal(0)) + fill.fee
            side = summary.bought if fill.side == "buy" else summary.sold
            side[fill.pair] = side.get(fill.pair, Decimal(0)) + fill.volume
    return list(summaries.values())
