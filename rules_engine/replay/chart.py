"""The replay chart: each symbol's price line with markers where rules fired and where
orders filled, one panel per symbol, as a PNG (matplotlib, Agg backend: no display needed).

Long series are drawn from at most `MAX_POINTS` points: the lowest and highest price of each
time bucket, so spikes stay visible.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files only

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from rules_engine.replay.replay import PriceSeries, ReplayResult  # noqa: E402

MAX_POINTS = 4000
MAX_PANELS = 6
_BUY, _SELL = "#1a9850", "#d73027"


def write_chart(result: ReplayResult, path: Path | str, title: str | None = None) -> Path:
    """Draw the chart and save it as PNG; returns the path."""
    symbols = _symbols(result)
    figure, axes = plt.subplots(len(symbols), 1, figsize=(12, 3.2 + 2.6 * len(symbols)), sharex=True, squeeze=False)
    colors = plt.get_cmap("tab10")
    rule_color = {rule: colors(n % 10) for n, rule in enumerate(sorted({o.rule_id for o in result.fires}))}
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        series = result.prices.get(symbol)
        if series is not None:
            times, prices = _downsample(series)
            ax.plot([_date(t) for t in times], prices, color="#4a4a4a", linewidth=0.8, label=f"{symbol} price")
        for rule, color in rule_color.items():
            points = [(o, result.where(o)) for o in result.fires if o.rule_id == rule]
            clean = [(_date(o.time), float(p)) for o, (s, p) in points
                     if s == symbol and p is not None and o.block is None]
            stopped = [(_date(o.time), float(p)) for o, (s, p) in points if s == symbol and p is not None and o.block]
            if clean:
                ax.scatter(*zip(*clean, strict=True), marker="^", s=70, color=color, edgecolors="black",
                           linewidths=0.5, zorder=3, label=f"{rule} fired")
            if stopped:
                ax.scatter(*zip(*stopped, strict=True), marker="X", s=60, color=color, zorder=3,
                           label=f"{rule} fired, stopped")
        for side, edge, marker in (("buy", _BUY, "o"), ("sell", _SELL, "o")):
            fills = [(_date(f.time), float(f.price)) for f in result.fills if f.pair == symbol and f.side == side]
            if fills:
                ax.scatter(*zip(*fills, strict=True), marker=marker, s=36, facecolors="none", edgecolors=edge,
                           linewidths=1.5, zorder=4, label=f"{side} filled")
        ax.set_ylabel(symbol)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    figure.suptitle(title or f"Replay of {', '.join(result.rule_files) or 'no rules'}: "
                    f"{len(result.fires)} fires, {len(result.fills)} fills")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, format="png", dpi=100)
    plt.close(figure)
    return target


def _symbols(result: ReplayResult) -> list[str]:
    ordered = sorted(result.prices, key=lambda s: -len(result.prices[s].times))
    return ordered[:MAX_PANELS] or ["(no prices)"]


def _date(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _downsample(series: PriceSeries) -> tuple[list[float], list[float]]:
    times, prices = series.times, series.prices
    count = len(times)
    if count <= MAX_POINTS:
        return list(times), list(prices)
    buckets = MAX_POINTS // 2
    step = count / buckets
    out_t: list[float] = []
    out_p: list[float] = []
    for b in range(buckets):
        lo, hi = int(b * step), min(count, int((b + 1) * step))
        if lo >= hi:
            continue
        chunk = prices[lo:hi]
        low_i = min(range(len(chunk)), key=chunk.__getitem__)
        high_i = max(range(len(chunk)), key=chunk.__getitem__)
        for i in sorted({low_i, high_i}):
            out_t.append(times[lo + i])
            out_p.append(chunk[i])
    return out_t, out_p
