"""The replay chart (PNG; matplotlib with the Agg backend, no display needed; the `chart` extra).

One price panel per symbol (at most `MAX_PANELS`), and the equity panel under them:
- the price line (long series drawn from the lowest and highest price of each time bucket,
  at most `MAX_POINTS` points, so spikes stay visible);
- a dotted horizontal line at each price trigger's level;
- a triangle where a rule fired (a cross where its run was stopped: error, balance, risk...);
- each resting order as a horizontal segment at its price from placement to its end, with a
  circle where it filled (at its fill price), an `x` where it expired and a square where it was cancelled
  (an order still open at the end runs to the right edge);
- the equity (the wallet valued at the last prices) with its starting level.

Colours and the legend: with up to `MAX_RULE_LEGEND` rules each rule has its own colour and
legend entry (levels, fires and orders in the rule's colour); with more the chart colours by
kind (buy / sell, fired / stopped) and the legend lists kinds, so 100 rules stay legible.
The legend sits outside the plots on the right. Markers beyond `MAX_MARKERS` per panel and
segments beyond `MAX_SEGMENTS` are thinned evenly (the report's tables hold them all).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files only

import matplotlib.dates as mdates  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from rules_engine.replay.replay import PriceSeries, ReplayResult  # noqa: E402

MAX_POINTS = 4000
MAX_PANELS = 6
MAX_RULE_LEGEND = 10
MAX_MARKERS = 3000
MAX_SEGMENTS = 2000
_BUY, _SELL, _STOP, _PRICE = "#1a9850", "#d73027", "#7b3294", "#4a4a4a"
_END_MARKERS = {"filled": ("o", "filled"), "partially filled": ("o", "filled"), "expired": ("x", "expired"),
                "cancelled": ("s", "cancelled")}


def build_chart(result: ReplayResult, title: str | None = None) -> Figure:
    """The chart as a matplotlib `Figure` (not shown, not saved)."""
    symbols = _symbols(result)
    fired_rules = [r for r in result.rule_ids if r in result.ledger.books and result.ledger.books[r].fires]
    by_rule = len(fired_rules) <= MAX_RULE_LEGEND
    palette = matplotlib.colormaps["tab10"]
    colour = {rule: palette(n) for n, rule in enumerate(fired_rules)} if by_rule else {}
    figure = Figure(figsize=(13, 2.2 + 2.6 * len(symbols) + 1.8), layout="constrained")
    heights = [3] * len(symbols) + [2]
    axes = figure.subplots(len(symbols) + 1, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    fires = _fires_by_symbol(result, symbols)
    segments = _segments_by_symbol(result, symbols)
    handles: dict[str, Any] = {}
    for ax, symbol in zip(axes[:-1], symbols, strict=True):
        series = result.prices.get(symbol)
        if series is not None:
            times, prices = _downsample(series)
            handles["price"] = ax.plot([_date(t) for t in times], prices, color=_PRICE, linewidth=0.8,
                                       label="price", gid="price")[0]
        for level in result.levels:
            if level.symbol != symbol:
                continue
            tint = colour.get(level.rule_id, "#9e9e9e")
            line = ax.axhline(float(level.level), color=tint, linestyle=":", linewidth=0.9, alpha=0.8, gid="level")
            handles.setdefault("level" if not by_rule else f"{level.rule_id}", line)
        _draw_segments(ax, segments.get(symbol, []), colour, by_rule, handles)
        _draw_fires(ax, fires.get(symbol, []), colour, by_rule, handles)
        ax.set_ylabel(symbol)
        ax.grid(True, alpha=0.3)
    _draw_equity(axes[-1], result)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    figure.suptitle(title or f"Replay of {', '.join(result.rule_files) or 'no rules'}: {result.fire_count:,} fires, "
                             f"{result.ledger.fills_count:,} fills")
    figure.legend(*_legend(handles, colour, by_rule), loc="outside right upper", fontsize=8, framealpha=0.9)
    return figure


def write_chart(result: ReplayResult, path: Path | str, title: str | None = None) -> Path:
    """Draw the chart and save it as PNG; returns the path."""
    figure = build_chart(result, title)
    target = Path(path)
    figure.savefig(target, format="png", dpi=100)
    return target


# ----------------------------------------------------------------------------- drawing


def _draw_fires(ax: Any, fires: list[tuple[float, float, str, bool]], colour: dict[str, Any], by_rule: bool,
                handles: dict[str, Any]) -> None:
    fires = _thin(fires, MAX_MARKERS)
    groups: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for time, price, rule, stopped in fires:
        groups.setdefault((rule if by_rule else "", stopped), []).append((time, price))
    for (rule, stopped), points in groups.items():
        tint = colour.get(rule, _STOP if stopped else "#2c7bb6")
        xs = [_date(t) for t, _ in points]
        ys = [p for _, p in points]
        if stopped:
            artist = ax.scatter(xs, ys, marker="X", s=55, color=tint, edgecolors="black", linewidths=0.4, zorder=5,
                                gid="fire-stopped")
            handles.setdefault("fired, stopped", artist)
        else:
            artist = ax.scatter(xs, ys, marker="^", s=60, color=tint, edgecolors="black", linewidths=0.4, zorder=5,
                                gid="fire")
            handles.setdefault("fired" if not by_rule else f"{rule}", artist)


def _draw_segments(ax: Any, segments: list[dict[str, Any]], colour: dict[str, Any], by_rule: bool,
                   handles: dict[str, Any]) -> None:
    segments = _thin(segments, MAX_SEGMENTS)
    if not segments:
        return
    lines, tints = [], []
    ends: dict[str, list[tuple[float, float, Any]]] = {}
    for s in segments:
        price = float(s["price"])
        start, end = mdates.date2num(_date(s["placed"])), mdates.date2num(_date(s["end"]))
        lines.append([(start, price), (end, price)])
        side_tint = _BUY if s["side"] == "buy" else _SELL
        tints.append(colour.get(s.get("rule") or "", side_tint) if by_rule else side_tint)
        if s["status"] in _END_MARKERS:  # a fill is marked where it filled
            ends.setdefault(s["status"], []).append((end, float(s.get("fill_price") or price), tints[-1]))
    collection = LineCollection(lines, colors=tints, linewidths=2.2, alpha=0.75, zorder=3, gid="resting-orders")
    ax.add_collection(collection)
    handles.setdefault("resting order (buy)" if not by_rule else "resting order",
                       Line2D([], [], color=_BUY if not by_rule else "#555555", linewidth=2.2))
    if not by_rule:
        handles.setdefault("resting order (sell)", Line2D([], [], color=_SELL, linewidth=2.2))
    for status, points in ends.items():
        marker, label = _END_MARKERS[status]
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        if marker == "o":
            artist = ax.scatter(xs, ys, marker="o", s=40, c=[p[2] for p in points], edgecolors="black",
                                linewidths=1.0, zorder=6, gid=f"order-{label}")
        elif marker == "x":
            artist = ax.scatter(xs, ys, marker="x", s=50, color="black", linewidths=1.5, zorder=6,
                                gid=f"order-{label}")
        else:
            artist = ax.scatter(xs, ys, marker="s", s=40, facecolors="none", edgecolors="black", linewidths=1.0,
                                zorder=6, gid=f"order-{label}")
        handles.setdefault(f"order {label}", artist)


def _draw_equity(ax: Any, result: ReplayResult) -> None:
    curve = result.ledger.curve()
    totals = result.ledger.totals(result.period)
    if curve:
        ax.plot([_date(t) for t, _ in curve], [v for _, v in curve], color="#2b83ba", linewidth=1.0, gid="equity")
    if totals["equity_start"] is not None:
        ax.axhline(totals["equity_start"], color="#9e9e9e", linestyle="--", linewidth=0.8, gid="equity-start")
    ax.set_ylabel(f"equity\n{totals['valuation'] or ''}")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.grid(True, alpha=0.3)


def _legend(handles: dict[str, Any], colour: dict[str, Any], by_rule: bool) -> tuple[list[Any], list[str]]:
    """By rule (a patch of each rule's colour) up to the limit, then the kinds of marks."""
    items: list[tuple[Any, str]] = []
    if "price" in handles:
        items.append((handles["price"], "price"))
    if by_rule:
        for rule, tint in colour.items():
            items.append((Line2D([], [], color=tint, marker="^", linestyle=":", markeredgecolor="black"),
                          f"{rule}: level, fire"))
    else:
        for key in ("level", "fired"):
            if key in handles:
                items.append((handles[key], "price trigger level" if key == "level" else "fired"))
    for key in ("fired, stopped", "resting order", "resting order (buy)", "resting order (sell)", "order filled",
                "order expired", "order cancelled"):
        if key in handles:
            items.append((handles[key], key))
    return [h for h, _ in items], [label for _, label in items]


# ----------------------------------------------------------------------------- data


def _symbols(result: ReplayResult) -> list[str]:
    ordered = sorted(result.prices, key=lambda s: -len(result.prices[s].times))
    return ordered[:MAX_PANELS] or ["(no prices)"]


def _fires_by_symbol(result: ReplayResult, symbols: list[str]) -> dict[str, list[tuple[float, float, str, bool]]]:
    out: dict[str, list[tuple[float, float, str, bool]]] = {}
    step = max(1, result.ledger.fires.count // MAX_MARKERS)  # thinned while read: never all in memory
    for n, row in enumerate(result.ledger.fires.rows()):
        symbol, price = row.get("symbol"), row.get("price")
        if n % step and not row.get("stopped"):
            continue
        if symbol in symbols and price is not None:
            out.setdefault(symbol, []).append((row["time"], float(price), row["rule"], bool(row.get("stopped"))))
    return out


def _segments_by_symbol(result: ReplayResult, symbols: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    step = max(1, result.ledger.orders.count // MAX_SEGMENTS)
    for n, row in enumerate(result.ledger.orders.rows()):
        if n % step:
            continue
        if row.get("pair") in symbols and row.get("price") is not None:
            out.setdefault(row["pair"], []).append(row)
    return out


def _thin(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(n * step)] for n in range(limit)]


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

