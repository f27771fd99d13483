"""A replay: rules run in dry-run over recorded market data, through the offline loop.

    files = [open_data("XBTUSD_60.csv")]
    result = run_replay(load_rules(["rules/"]).ruleset, files, wallet={"ZUSD": Decimal(10000)})
    write_text(result, sys.stdout)

The replay streams: the runner forgets settled fires, and the `backtest.Ledger` keeps running
figures (orders, fees, PnL, equity, drawdown, exposure per rule and in total) and writes the
rows (fires, trades, resting orders) to spool files as they happen. `ReplayResult` holds the
ledger and each symbol's price series (floats, for the chart only); `report` renders it as
text, Markdown and JSON, `chart` as a PNG.
"""

from __future__ import annotations

import gc
import itertools
import shutil
import tempfile
import weakref
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rules_engine.core import PlaceOrder, RiskLimits
from rules_engine.core.model import Rule, RuleSet
from rules_engine.needs import rule_needs
from rules_engine.pairs import default_registry
from rules_engine.replay.backtest import Ledger
from rules_engine.replay.data import DataError, DataFile, Played, played
from rules_engine.replay.describe import intent_text, iso
from rules_engine.replay.outcomes import Outcome
from rules_engine.replay.runner import OfflineRunner

ProgressWrapper = Callable[[Iterator[Played], int], Iterable[Played]]


@dataclass
class PriceSeries:
    """One symbol's prices over time (floats: they only draw the chart)."""

    times: array = field(default_factory=lambda: array("d"))
    prices: array = field(default_factory=lambda: array("d"))


@dataclass(frozen=True)
class Level:
    """A price trigger's level, drawn as a line on the chart."""

    rule_id: str
    symbol: str
    level: Decimal
    direction: str


@dataclass
class ReplayResult:
    """What a replay did. The rows (fires, trades, resting orders) are in the ledger's spool
    files (`ledger.fires.rows()`, ...), the running figures in `ledger`."""

    rule_files: tuple[str, ...]
    rule_ids: list[str]
    data: list[DataFile]
    start: float
    end: float
    ticks: int
    wallet_start: dict[str, Decimal]
    wallet_end: dict[str, Decimal]
    open_orders: int
    ledger: Ledger
    prices: dict[str, PriceSeries]
    levels: list[Level] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # data frames that made no tick, by kind
    held_back: int = 0
    # Ticks not played because no rule watches their pair (by symbol; a recorded pair that
    # AssetPairs does not list is counted by its wire name).
    unwatched: dict[str, int] = field(default_factory=dict)
    # The paper Futures account (`OfflineRunner.futures_account`) at the end, with `collateral_start`;
    # None when it was not funded and no rule sends Futures orders. Not in the ledger's equity, PnL or counts.
    futures: dict[str, Any] | None = None

    @property
    def fire_count(self) -> int:
        return sum(book.fires for book in self.ledger.books.values())

    @property
    def period(self) -> float:
        return self.end - self.start


def run_replay(
    ruleset: RuleSet,
    data: list[DataFile],
    *,
    wallet: Mapping[str, Decimal] | None = None,
    futures_wallet: Mapping[str, Decimal] | None = None,
    limits: RiskLimits | None = None,
    timers: bool = True,
    balance_max_age: float = 10.0,
    progress: ProgressWrapper | None = None,
    state_dir: str | Path | None = None,
    spool: str | Path | None = None,
) -> ReplayResult:
    """Replay the data files' ticks, merged by time, through the rules; ticks of pairs no rule
    watches (triggers, orders, `price_of`) are skipped and counted. Raises `DataError`
    for unusable data (nothing is half-reported). `state_dir` keeps the run's state store and
    audit log (`audit.jsonl`, the same records a dry run writes) instead of discarding them.
    `spool` is the folder for the report's rows (default: a temporary folder that lives as
    long as the result). `futures_wallet` is the paper Futures account's collateral (none: every
    Futures order is refused for want of margin, as in a dry run)."""
    skipped: Counter[str] = Counter()
    items = played(data, skipped)
    first = next(items, None)
    if first is None:
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(skipped.items()))
        raise DataError("the data files hold no ticks" + (f" (skipped frames: {kinds})" if kinds else ""))
    stream: Iterable[Played] = itertools.chain([first], items)
    if progress is not None:
        stream = progress(iter(stream), sum(f.estimate() for f in data))
    rule_ids = [rule.id for rule in ruleset.rules]
    rules = ruleset.by_id()
    where = {rule.id: f"{rule.source.file}:{rule.source.line}" for rule in ruleset.rules if rule.source}
    folder = Path(tempfile.mkdtemp(prefix="rules-engine-replay-")) if spool is None else Path(spool)
    registry = next((f.registry for f in data if f.registry is not None), None) or default_registry()
    ledger = Ledger(rule_ids, registry, folder, where)
    if spool is None:
        weakref.finalize(ledger, shutil.rmtree, folder, True)  # the rows go with the result
    needs = rule_needs(ruleset)
    watched = needs.spot_symbols | needs.futures_symbols
    unwatched: Counter[str] = Counter()
    last_price: dict[str, Decimal | str] = {}  # a candle's price stays text until it is needed
    held_back = 0
    runner: OfflineRunner | None = None

    def settled(outcome: Outcome) -> None:
        nonlocal held_back
        block = (outcome.block.by, outcome.block.reason) if outcome.block else None
        ledger.outcome_counts(outcome.rule_id, outcome.fired, outcome.status, block, outcome.time,
                              _error_where(rules.get(outcome.rule_id), outcome))
        if not outcome.fired:
            held_back += 1
            return
        assert runner is not None
        ledger.fire(_fire_row(outcome, last_price), runner.open_orders_of(outcome), outcome.decision_id)

    runner = OfflineRunner(ruleset, start=first[0], wallet=wallet, futures_wallet=futures_wallet, limits=limits,
                           timers=timers, balance_max_age=balance_max_age, on_outcome=settled, state_dir=state_dir,
                           keep=False, listener=ledger)
    threshold = gc.get_threshold()
    # Ticks die young and hold no cycles: collecting after every 700 allocations only costs time.
    gc.set_threshold(max(threshold[0], 200_000), *threshold[1:])
    try:
        wallet_start = runner.balances()
        ledger.start(wallet_start)
        series: dict[str, PriceSeries] = {}
        count = 0
        end = first[0]
        feed_tick = runner.feed_tick
        feed_price = runner.feed_price
        deferral = runner.deferral
        now, due, bands, held = deferral()
        prices = ledger.prices
        pending: list[Played] = []  # ticks whose prices the ledger has yet to see (before the next fill)
        priced = pending.append
        appends: dict[str, tuple[Callable[[float], None], Callable[[float], None]]] = {}  # symbol -> its series'
        for item in stream:
            time, symbol, value, exact, tick = item
            if symbol not in watched:
                unwatched[symbol] += 1
                continue
            if tick is not None:  # a recorded tick
                price = tick.last
                if price is None:
                    price = tick.mid
                if price is not None:
                    last_price[symbol] = price
                    value = float(price)
                    priced((time, symbol, value, None, None))
            else:  # a candle's: its price as a float and as text (or a Decimal)
                last_price[symbol] = exact  # type: ignore[assignment]  # never None for a candle's
                priced(item)
            if value is not None:
                add = appends.get(symbol)
                if add is None:
                    line = series[symbol] = PriceSeries()
                    add = appends[symbol] = (line.times.append, line.prices.append)
                add[0](time)
                add[1](value)
            if tick is not None:
                prices(pending)
                pending.clear()
                feed_tick(tick)
                now, due, bands, held = deferral()
            elif value is not None:
                # `feed_price`'s quiet-tick fast path, inlined (see `OfflineRunner.deferral`), on
                # floats: strictly inside the band's edges as floats is strictly inside the band
                if now <= time < due:
                    band = bands.get(symbol)
                    if band is not None and band[2][0] < value < band[2][1]:
                        held[symbol] = item
                        count += 1
                        if time > end:
                            end = time
                        if len(pending) >= _PENDING:
                            prices(pending)
                            pending.clear()
                        continue
                prices(pending)
                pending.clear()
                feed_price(symbol, time, exact if type(exact) is Decimal else Decimal(exact))  # type: ignore[arg-type]
                now, due, bands, held = deferral()
            count += 1
            if time > end:
                end = time
        prices(pending)
        runner.finish(end)
        ledger.last.update({symbol: Decimal(price) for symbol, price in last_price.items()})
        ledger.finish(end, runner.open_orders())
        futures = runner.futures_account()
        futures_used = bool(futures_wallet) or futures["orders"] > 0 or "futures" in ruleset.order_markets()
        for file in data:
            unwatched.update(file.unknown_pairs)
        return ReplayResult(
            rule_files=ruleset.files,
            rule_ids=rule_ids,
            data=data,
            start=first[0],
            end=end,
            ticks=count,
            wallet_start=wallet_start,
            wallet_end=runner.balances(),
            open_orders=len(runner.open_orders()),
            ledger=ledger,
            prices=series,
            levels=price_levels(ruleset),
            skipped=dict(skipped),
            held_back=held_back,
            unwatched=dict(sorted(unwatched.items())),
            futures={"collateral_start": dict(futures_wallet or {}), **futures} if futures_used else None,
        )
    except BaseException:
        ledger.close()
        raise
    finally:
        gc.set_threshold(*threshold)
        runner.close()


_PENDING = 4096  # quiet ticks at most before the ledger sees their prices


def price_levels(ruleset: RuleSet) -> list[Level]:
    """The levels of the rules' price triggers (the chart draws them)."""
    levels = []
    for rule in ruleset.rules:
        for trigger in rule.triggers:
            level = getattr(trigger, "level", None)
            symbol = getattr(trigger, "symbol", None)
            if trigger.type == "price" and isinstance(level, Decimal) and isinstance(symbol, str):
                levels.append(Level(rule.id, symbol, level, str(getattr(trigger, "direction", ""))))
    return levels


def _error_where(rule: Rule | None, outcome: Outcome) -> str | None:
    """`file:line (actions[0].volume)` of the action a run failed in, else of the rule."""
    if rule is None or outcome.block is None or outcome.block.by not in ("error", "exchange"):
        return None
    detail = outcome.block.detail
    index = detail.get("action")
    source = rule.source
    if isinstance(index, int) and 0 <= index < len(rule.actions) and rule.actions[index].where is not None:
        source = rule.actions[index].where
    if source is None:
        return None
    field = detail.get("where")
    return f"{source.file}:{source.line}" + (f" ({field})" if isinstance(field, str) else "")


def _fire_row(outcome: Outcome, last_price: Mapping[str, Decimal | str]) -> dict[str, Any]:
    """A fire's row in the report: where it is drawn (the trigger's symbol and price, else
    its order's market), what it did, its fills so far and how its run ended."""
    symbol = outcome.context.get("symbol")
    price = outcome.price
    if symbol is None:
        orders = [i.pair for i in outcome.intents if isinstance(i, PlaceOrder)]
        symbol = orders[0] if orders else (next(iter(last_price)) if last_price else None)
    if price is None and symbol is not None:
        last = last_price.get(symbol)
        price = None if last is None else Decimal(last)
    return {
        "time": outcome.time,
        "iso": iso(outcome.time),
        "rule": outcome.rule_id,
        "decision_id": outcome.decision_id,
        "symbol": symbol,
        "price": price,
        "intents": [intent_text(i) for i in outcome.intents],
        "intent_details": [i.to_dict() for i in outcome.intents],
        "fills": [{"time": f.time, "txid": f.txid, "pair": f.pair, "side": f.side, "ordertype": f.ordertype,
                   "volume": f.volume, "price": f.price, "fee": f.fee} for f in outcome.fills],
        "balances_after": outcome.fills[-1].balances_after if outcome.fills else outcome.balances_after,
        "status": outcome.status,
        "stopped": None if outcome.block is None else {"by": outcome.block.by, "reason": outcome.block.reason},
    }
