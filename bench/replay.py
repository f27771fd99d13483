"""Replay throughput: `python -m bench.replay` (`BENCH_REPLAY_TICKS=200000` for a shorter run).

It also replays the same ticks against rules whose levels are never reached, so the cost of a
fire (committed and dispatched as the service does it) can be told apart from the cost of a tick.

Replays 1,000,000 ticks against 100 rules through the full `rules-engine replay` path:
Kraken OHLCVT CSV files read and turned into ticks (four per candle), merged by time, fed
through the engine's one loop as the service runs it (driver, commit-then-send lane,
dispatcher, dry-run executor with simulated fills, timers and deadlines) and recorded for
the report; the report itself (tables, JSON, chart) is timed separately.

Data: four pairs (XBTUSD, ETHUSD, SOLUSD, XRPUSD), each a seeded log-normal walk of
1-minute candles, a quarter of the ticks each. Rules: 25 per pair, price crossings at levels
spread over the range the walk covers (re-arming 0.2% back), half buying at market when the
price falls through their level, half selling when it rises through, with a 5-minute
cooldown; the paper wallet holds enough of every asset for every order to fill.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from decimal import ROUND_UP, Decimal
from pathlib import Path

from rules_engine.pairs import default_registry
from rules_engine.replay.data import open_data
from rules_engine.replay.replay import run_replay
from rules_engine.rules import load_rules_text

PAIRS = {"XBTUSD": 70000.0, "ETHUSD": 2500.0, "SOLUSD": 150.0, "XRPUSD": 0.6}
RULES_PER_PAIR = 25
START = 1767225600


def _candles(path: Path, start_price: float, count: int, rng: random.Random) -> tuple[float, float]:
    price, low_seen, high_seen = start_price, start_price, start_price
    digits = 1 if start_price > 100 else 4
    with open(path, "w") as handle:
        for n in range(count):
            close = price * math.exp(rng.gauss(0.0, 0.0015))
            high = max(price, close) * (1 + abs(rng.gauss(0.0, 0.0005)))
            low = min(price, close) * (1 - abs(rng.gauss(0.0, 0.0005)))
            handle.write(f"{START + 60 * n},{price:.{digits}f},{high:.{digits}f},{low:.{digits}f},"
                         f"{close:.{digits}f},{rng.uniform(0.1, 5):.8f},{rng.randint(1, 40)}\n")
            low_seen, high_seen = min(low_seen, low), max(high_seen, high)
            price = close
    return low_seen, high_seen


def _rules(ranges: dict[str, tuple[float, float]]) -> str:
    lines = ["version: 1", "rules:"]
    for pair, (low, high) in ranges.items():
        digits = 1 if low > 100 else 4
        pair_info = default_registry().resolve(pair)
        minimum = max(pair_info.ordermin, pair_info.costmin / Decimal(str(low))) * 2
        volume = format(minimum.quantize(Decimal(1).scaleb(-pair_info.lot_decimals), rounding=ROUND_UP), "f")
        for n in range(RULES_PER_PAIR):
            level = low + (high - low) * (n + 0.5) / RULES_PER_PAIR
            side, direction = ("buy", "crosses_below") if n % 2 == 0 else ("sell", "crosses_above")
            lines += [
                f"  - id: {pair.lower()}-{n}",
                f"    triggers: [{{type: price, symbol: {pair}, {direction}: {level:.{digits}f}, rearm: \"0.2%\"}}]",
                "    cooldown: 5m",
                f"    actions: [{{type: place_order, pair: {pair}, side: {side}, ordertype: market,"
                f" volume: {volume}}}]",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ticks = int(os.environ.get("BENCH_REPLAY_TICKS", "1000000"))
    candles = ticks // (4 * len(PAIRS))
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as folder:
        ranges, files = {}, []
        for pair, price in PAIRS.items():
            path = Path(folder) / f"{pair}_1.csv"
            ranges[pair] = _candles(path, price, candles, rng)
            files.append(path)
        loaded = load_rules_text(_rules(ranges))
        assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
        wallet = {"ZUSD": Decimal(10) ** 9, "XXBT": Decimal(10) ** 4, "XETH": Decimal(10) ** 5,
                  "SOL": Decimal(10) ** 6, "XXRP": Decimal(10) ** 8}
        data = [open_data(path) for path in files]
        started = time.perf_counter()
        result = run_replay(loaded.ruleset, data, wallet=wallet)
        elapsed = time.perf_counter() - started
        # The same run with every level out of reach: the cost of the ticks alone, no fire.
        quiet = load_rules_text(_rules({pair: (low * 100, high * 100) for pair, (low, high) in ranges.items()}))
        assert quiet.ruleset is not None
        quiet_started = time.perf_counter()
        quiet_result = run_replay(quiet.ruleset, [open_data(path) for path in files], wallet=wallet)
        quiet_elapsed = time.perf_counter() - quiet_started

        from rules_engine.replay.chart import write_chart
        from rules_engine.replay.report import write_json, write_markdown

        report_started = time.perf_counter()
        with open(Path(folder) / "report.md", "w") as handle:
            write_markdown(result, handle, "chart.png")
        with open(Path(folder) / "report.json", "w") as handle:
            write_json(result, handle, "chart.png")
        write_chart(result, Path(folder) / "chart.png")
        report_elapsed = time.perf_counter() - report_started

    print(f"replay: {result.ticks:,} ticks ({len(PAIRS)} pairs, {candles:,} 1-minute candles each) "
          f"against {len(loaded.ruleset.rules)} rules")
    print(f"  {result.fire_count:,} fires, {result.ledger.fills_count:,} simulated fills, "
          f"{result.held_back:,} held back")
    print(f"  replay (read CSV, candles to ticks, engine, paper fills, record): {elapsed:.1f} s, "
          f"{result.ticks / elapsed:,.0f} ticks/s ({elapsed / result.ticks * 1e6:.1f} us per tick)")
    print(f"  the same ticks with no level reached (no fire): {quiet_elapsed:.1f} s, "
          f"{quiet_result.ticks / quiet_elapsed:,.0f} ticks/s; a fire costs about "
          f"{(elapsed - quiet_elapsed) / max(1, result.fire_count) * 1e3:.2f} ms")
    print(f"  report (Markdown and JSON tables, PNG chart): {report_elapsed:.1f} s")
    if result.ticks < 1_000_000:
        print(f"  extrapolated to 1,000,000 ticks: {1_000_000 / (result.ticks / elapsed):.0f} s "
              "(cost per tick is flat in the tick count)")


if __name__ == "__main__":
    main()
