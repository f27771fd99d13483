"""Validation speed: 1,000 rules spread over 100 files, loaded and checked end to end.

Generates the files into a temporary folder (a mix of price, signal and timer rules with
guards, expressions and several action types), then times `load_rules` on the folder.
Target: under 2 s. Also times one small file with nothing cached (the AssetPairs snapshot,
Kraken's 1,434 pairs, is read and indexed as `rules-engine validate` does on every run).
Run: `python -m bench.validate`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rules_engine.pairs import default_registry, snapshot_result, use_snapshot
from rules_engine.rules import load_rules
from rules_engine.rules.literal_names import asset_names
from rules_engine.rules.schema_check import rules_validator

FILES = 100
RULES_PER_FILE = 10
TARGET_SECONDS = 2.0

_HEADER = """# yaml-language-server: $schema=../schemas/rules.schema.json
version: 1
defaults:
  cooldown: 5m
rules:
"""

_RULES = [
    """  - id: price-{n}
    description: Breakout rule {n}
    priority: {p}
    triggers:
      - type: price
        symbol: BTC/USD
        crosses_above: {level}
        rearm: "0.5%"
    when:
      all:
        - "ask - bid < 50"
        - not: "balance('ZUSD') < 100"
    for: 30s
    actions:
      - type: check_balance
        asset: USD
        minimum: "=ask * 0.01"
      - type: place_order
        pair: XBTUSD
        side: buy
        ordertype: limit
        volume: "=round(balance('ZUSD') * 0.05 / price, 6)"
        price: "=round(ask * 1.001, 1)"
        close: {{ordertype: take-profit, price: "+5%"}}
        expire_after: 2m
      - type: log
        message: "rule {n}: {{symbol}} at {{price}}"
""",
    """  - id: signal-{n}
    triggers:
      - type: signal
        source: tradingview
        where: "signal.action == 'sell'"
    max_fires: {{count: 2, window: 1h}}
    actions:
      - type: place_order
        pair: ETH/USD
        side: sell
        ordertype: market
        volume: 0.05
      - type: cancel_order
        own: true
      - type: notify
        message: "signal {n}: {{signal.ticker}}"
""",
    """  - id: timer-{n}
    triggers:
      - type: timer
        cron: "*/5 * * * *"
        timezone: Europe/Berlin
      - type: timer
        every: 30s
    actions:
      - type: dead_man_switch
        timeout: 60s
      - type: futures_send_order
        if: "balance('ZUSD') > 10"
        symbol: PF_XBTUSD
        side: buy
        order_type: lmt
        size: 0.01
        limit_price: 60000
""",
]


def generate(folder: Path) -> int:
    """Write FILES files of RULES_PER_FILE rules each; return the number of rules written."""
    count = 0
    for f in range(FILES):
        body = [_HEADER]
        for _ in range(RULES_PER_FILE):
            body.append(_RULES[count % len(_RULES)].format(n=count, p=count % 7, level=60000 + count))
            count += 1
        (folder / f"rules-{f:03d}.yaml").write_text("".join(body))
    return count


def main() -> None:
    rules_validator()  # compiled once per process; count its build apart from the load
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        written = generate(folder)
        start, start_cpu = time.perf_counter(), time.process_time()
        result = load_rules([folder])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if result.errors:
        raise SystemExit(f"benchmark rules are invalid: {result.errors[0]}")
    assert result.ruleset is not None and len(result.ruleset.rules) == written
    verdict = "ok" if elapsed < TARGET_SECONDS else "SLOW"
    print(f"validate: {written} rules in {FILES} files: {elapsed:.3f} s wall, {cpu:.3f} s CPU "
          f"({elapsed / written * 1000:.2f} ms/rule; target < {TARGET_SECONDS:.0f} s: {verdict})")
    one_file_cold()


def one_file_cold(runs: int = 5) -> None:
    """`load_rules` of one 3-rule file with the pair snapshot read afresh (best of `runs`)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.yaml"
        path.write_text(_HEADER + "".join(r.format(n=n, p=0, level=60000) for n, r in enumerate(_RULES)))
        best = snapshot = float("inf")
        for _ in range(runs):
            use_snapshot(None)
            snapshot_result.cache_clear()  # drop the parsed snapshot and the registry
            default_registry.cache_clear()
            asset_names.cache_clear()
            start = time.perf_counter()
            default_registry()
            loaded = time.perf_counter()
            result = load_rules([path])
            done = time.perf_counter()
            assert result.ruleset is not None, result.errors
            best, snapshot = min(best, done - start), min(snapshot, loaded - start)
    print(f"validate one file, cold: {best * 1000:.1f} ms, of which reading the {len(default_registry())}-pair "
          f"snapshot {snapshot * 1000:.1f} ms")


if __name__ == "__main__":
    main()
