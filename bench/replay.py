"""Replay throughput and memory: `python -m bench.replay` (`BENCH_REPLAY_TICKS=200000` for a shorter run).

Target (issue 14): at least 300,000 ticks/s for 1,000,000 ticks x 100 rules, and a peak
memory that does not grow with the number of fires.

Every scenario runs in its own process (so its peak RSS is its own) through the full
`rules-engine replay` path: Kraken OHLCVT CSV files read and turned into ticks (four per
candle), merged by time, fed through the engine's one loop as the service runs it (driver,
commit-then-send lane, dispatcher, dry-run executor with simulated fills, timers and
deadlines), the backtest accounts kept, then report.md, report.json and chart.png written.

Data: four pairs (XBTUSD, ETHUSD, SOLUSD, XRPUSD), each a seeded log-normal walk of 1-minute
candles, a quarter of the ticks each. Scenarios:
- `band`: 25 rules per pair, price crossings at levels spread over the range the walk covers
  (re-arming 0.2% back), half buying at market when the price falls through their level,
  half selling when it rises through, with a 5-minute cooldown;
- `quiet`: the same rules with every level out of reach (the cost of the ticks alone);
- `one-level` (few fires, many fires): 200 rules at one XBTUSD level (where the walk starts),
  half buying and half
  selling at market (so the trades close and the open position stays small); first
  with a 1-day cooldown (re-arming 0.05% back), then with a 1-second one (re-arming 0.01%
  back): the fires differ many times over, the peak memory should not.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import subprocess
import sys
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
WALLET = {"ZUSD": Decimal(10) ** 9, "XXBT": Decimal(10) ** 4, "XETH": Decimal(10) ** 5, "SOL": Decimal(10) ** 6,
          "XXRP": Decimal(10) ** 8}


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


def _volume(pair: str, low: float) -> str:
    info = default_registry().resolve(pair)
    minimum = max(info.ordermin, info.costmin / Decimal(str(low))) * 2
    return format(minimum.quantize(Decimal(1).scaleb(-info.lot_decimals), rounding=ROUND_UP), "f")


def _band_rules(ranges: dict[str, tuple[float, float]]) -> str:
    lines = ["version: 1", "rules:"]
    for pair, (low, high) in ranges.items():
        digits = 1 if low > 100 else 4
        volume = _volume(pair, low)
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


def _one_level_rules(ranges: dict[str, tuple[float, float]], cooldown: str, rearm: str) -> str:
    low, _ = ranges["XBTUSD"]
    level = PAIRS["XBTUSD"]  # where the walk starts: the level it crosses most
    lines = ["version: 1", "rules:"]
    for n in range(200):
        lines += [
            f"  - id: level-{n}",
            f"    triggers: [{{type: price, symbol: XBTUSD, crosses_above: {level:.1f}, rearm: \"{rearm}\"}}]",
            f"    cooldown: {cooldown}",
            f"    actions: [{{type: place_order, pair: XBTUSD, side: {'buy' if n % 2 == 0 else 'sell'},"
            f" ordertype: market, volume: {_volume('XBTUSD', low)}}}]",
        ]
    return "\n".join(lines) + "\n"


def _scenario_rules(name: str, ranges: dict[str, tuple[float, float]]) -> str:
    if name == "band":
        return _band_rules(ranges)
    if name == "quiet":
        return _band_rules({pair: (low * 100, high * 100) for pair, (low, high) in ranges.items()})
    if name == "one-level-few":
        return _one_level_rules(ranges, "1d", "0.05%")
    return _one_level_rules(ranges, "1s", "0.002%")


def child(name: str, folder: Path) -> None:
    """One scenario in this process: replay, write the reports, print the figures as JSON."""
    ranges = json.loads((folder / "ranges.json").read_text())
    loaded = load_rules_text(_scenario_rules(name, ranges))
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    files = [open_data(folder / f"{pair}_1.csv") for pair in PAIRS]
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_replay(loaded.ruleset, files, wallet=WALLET)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started

    from rules_engine.replay.chart import write_chart
    from rules_engine.replay.report import write_json, write_markdown

    out = folder / name
    out.mkdir(exist_ok=True)
    report_started = time.perf_counter()
    with open(out / "report.md", "w") as handle:
        write_markdown(result, handle, "chart.png")
    with open(out / "report.json", "w") as handle:
        write_json(result, handle, "chart.png")
    write_chart(result, out / "chart.png")
    report_elapsed = time.perf_counter() - report_started
    print(json.dumps({
        "scenario": name, "rules": len(loaded.ruleset.rules), "ticks": result.ticks, "seconds": elapsed, "cpu": cpu,
        "fires": result.fire_count, "fills": result.ledger.fills_count, "held_back": result.held_back,
        "report_seconds": report_elapsed, "peak_rss_mib": peak_rss_mib(),
    }))


def peak_rss_mib() -> float:
    """This process's own peak RSS. Linux's `ru_maxrss` keeps the peak across fork and exec, so
    under `make bench` (one process running every benchmark) a scenario would report its parent's
    size; `VmHWM` is the peak of this program's memory alone."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ticks = int(os.environ.get("BENCH_REPLAY_TICKS", "1000000"))
    candles = ticks // (4 * len(PAIRS))
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        ranges = {pair: _candles(folder / f"{pair}_1.csv", price, candles, rng) for pair, price in PAIRS.items()}
        (folder / "ranges.json").write_text(json.dumps(ranges))
        runs = {}
        for scenario in ("band", "quiet", "one-level-few", "one-level-many"):
            done = subprocess.run([sys.executable, "-m", "bench.replay", "--child", scenario, str(folder)],
                                  check=True, capture_output=True, text=True)
            runs[scenario] = json.loads(done.stdout.strip().splitlines()[-1])
    band, quiet = runs["band"], runs["quiet"]
    print(f"replay: {band['ticks']:,} ticks ({len(PAIRS)} pairs, {candles:,} 1-minute candles each), "
          f"each scenario in its own process")
    print("  (ticks/s by wall clock, then by the process's CPU time, steadier on a shared machine)")
    print(f"  band, {band['rules']} rules: {band['fires']:,} fires, {band['fills']:,} simulated fills, "
          f"{band['held_back']:,} held back; {band['seconds']:.2f} s, {_rates(band)} (target 300,000); "
          f"reports {band['report_seconds']:.1f} s; peak RSS {band['peak_rss_mib']:.0f} MiB")
    print(f"  quiet (no level reached, no fire): {quiet['seconds']:.2f} s, {_rates(quiet)}; a fire costs about "
          f"{(band['seconds'] - quiet['seconds']) / max(1, band['fires']) * 1e3:.2f} ms "
          f"({(band['cpu'] - quiet['cpu']) / max(1, band['fires']) * 1e3:.2f} ms CPU)")
    for scenario in ("one-level-few", "one-level-many"):
        run = runs[scenario]
        print(f"  {scenario}, {run['rules']} rules at one level: {run['fires']:,} fires; {run['seconds']:.1f} s, "
              f"{_rates(run)}; reports {run['report_seconds']:.1f} s; peak RSS {run['peak_rss_mib']:.0f} MiB")
    few, many = runs["one-level-few"], runs["one-level-many"]
    print(f"  peak RSS vs fires: {few['fires']:,} fires {few['peak_rss_mib']:.0f} MiB, {many['fires']:,} fires "
          f"{many['peak_rss_mib']:.0f} MiB ({many['peak_rss_mib'] - few['peak_rss_mib']:+.0f} MiB for "
          f"{many['fires'] / max(1, few['fires']):.0f}x the fires; target: no growth)")


def _rates(run: dict) -> str:
    return f"{run['ticks'] / run['seconds']:,.0f} ticks/s ({run['ticks'] / run['cpu']:,.0f} by CPU)"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
