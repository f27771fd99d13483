"""A replay's report as text, Markdown and JSON: the backtest figures in total and per rule,
the errors rules hit, the trades, and every fire.

The rows are read back from the ledger's spool files while they are written out, so a
report of a long replay is never held in memory. The JSON document's schema is
`schemas/replay-report.schema.json` (documented in docs/rule-tests-and-replay.md).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, TextIO

from rules_engine.core.trace import jsonable
from rules_engine.durations import format_duration
from rules_engine.replay.data import CANDLE_FRACTIONS
from rules_engine.replay.describe import balances_text, iso, number
from rules_engine.replay.replay import ReplayResult

SCHEMA = "replay-report/1"
CANDLE_NOTE = (
    "Each candle plays four ticks at {fractions} of its interval: open, then the shorter path through "
    "the extremes (rising candle: low then high; falling: high then low), then close; bid = ask = last."
)
FIRE_HEADERS = ["time", "rule", "price", "intents", "simulated fills", "balances after"]
TRADE_HEADERS = ["entry", "exit", "pair", "direction", "entry rule", "exit rule", "entry price", "exit price", "size",
                 "fee", "PnL"]
RULE_HEADERS = ["rule", "fires", "placed", "filled", "partial", "expired", "cancelled", "fees", "realised PnL",
                "unrealised PnL", "max drawdown", "exposure", "held back", "errors"]


# ----------------------------------------------------------------------------- JSON


def write_json(result: ReplayResult, out: TextIO, chart: str | None = None) -> None:
    """The machine-readable report (`--format json`, report.json), written as it is read:
    Decimals as strings, times as epoch seconds with an `iso` twin where useful."""
    head = {
        "schema": SCHEMA,
        "rules": list(result.rule_files),
        "data": [{"path": d.path.as_posix(), "format": d.format, "symbol": d.symbol, "interval": d.interval}
                 for d in result.data],
        "candles": CANDLE_NOTE.format(fractions=_fractions()) if _has_candles(result) else None,
        "skipped_frames": dict(sorted(result.skipped.items())),
        "period": {"start": iso(result.start), "end": iso(result.end), "start_time": result.start,
                   "end_time": result.end},
        "ticks": result.ticks,
        "skipped": {"ticks": sum(result.unwatched.values()), "by_symbol": result.unwatched},
        "wallet": {"start": result.wallet_start, "end": result.wallet_end, "open_orders": result.open_orders},
        "futures": result.futures,
        "totals": {**result.ledger.totals(result.period), "fires": result.fire_count, "held_back": result.held_back},
        "rules_summary": [book.to_dict(result.period) for book in _books(result)],
        "errors": [{**e, "iso": iso(e["time"])} for e in result.ledger.errors],
        "equity_curve": [{"time": t, "equity": round(v, 8)} for t, v in result.ledger.curve()],
        "chart": chart,
    }
    text = json.dumps(jsonable(head), indent=2)
    out.write(text[: text.rindex("}")].rstrip() + ",\n")
    for name, rows, last in (("trades", _trades(result), False), ("orders", result.ledger.orders.rows(), False),
                             ("fires", _fires(result), True)):
        out.write(f'  "{name}": [')
        first = True
        for row in rows:
            out.write(("\n    " if first else ",\n    ") + json.dumps(jsonable(row), separators=(", ", ": ")))
            first = False
        out.write("\n  ]" if not first else "]")
        out.write("\n" if last else ",\n")
    out.write("}\n")


def report_json(result: ReplayResult, chart: str | None = None) -> dict[str, Any]:
    """The JSON report as a dict (small replays and tests)."""
    buffer = io.StringIO()
    write_json(result, buffer, chart)
    document: dict[str, Any] = json.loads(buffer.getvalue())
    return document


# ----------------------------------------------------------------------------- text and Markdown


def write_text(result: ReplayResult, out: TextIO, files: Sequence[str] = ()) -> None:
    """The terminal report: header, backtest totals, per-rule summary, errors, trades, fires."""
    for line in _header(result) + [""] + _totals(result):
        out.write(line + "\n")
    sections: list[tuple[str, list[str], Callable[[], Iterable[list[str]]]]] = [
        ("Summary per rule", RULE_HEADERS, lambda: (_rule_cells(result, b) for b in _books(result))),
        (f"Errors ({len(result.ledger.errors)})", ["time", "rule", "where", "error"], lambda: _error_cells(result)),
        (f"Trades ({result.ledger.trades.count})", TRADE_HEADERS, lambda: (_trade_cells(t) for t in _trades(result))),
        (f"Fires ({result.fire_count})", FIRE_HEADERS, lambda: (_fire_cells(f) for f in _fires(result))),
    ]
    for title, headers, rows in sections:
        if title.startswith("Errors") and not result.ledger.errors:
            continue
        out.write(f"\n{title}\n")
        for line in _text_table(headers, rows):
            out.write(line + "\n")
    if files:
        out.write("\nReport written: " + ", ".join(files) + "\n")


def write_markdown(result: ReplayResult, out: TextIO, chart: str | None = None) -> None:
    out.write("# Replay report\n\n")
    for line in _header(result):
        out.write(f"- {line}\n")
    if chart:
        out.write(f"\n![price, levels, fires, resting orders and equity]({chart})\n")
    out.write("\n## Backtest\n\n")
    for line in _totals(result):
        out.write(f"- {line.strip()}\n")
    sections: list[tuple[str, list[str], Iterable[list[str]]]] = [
        ("Summary per rule", RULE_HEADERS, (_rule_cells(result, b) for b in _books(result))),
        (f"Errors ({len(result.ledger.errors)})", ["time", "rule", "where", "error"], _error_cells(result)),
        (f"Trades ({result.ledger.trades.count})", TRADE_HEADERS, (_trade_cells(t) for t in _trades(result))),
        (f"Fires ({result.fire_count})", FIRE_HEADERS, (_fire_cells(f) for f in _fires(result))),
    ]
    for title, headers, rows in sections:
        out.write(f"\n## {title}\n\n")
        out.write("| " + " | ".join(headers) + " |\n|" + "|".join("---" for _ in headers) + "|\n")
        for row in rows:
            out.write("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n")


# ----------------------------------------------------------------------------- helpers


def _books(result: ReplayResult) -> list[Any]:
    books = result.ledger.books
    ordered = [books[r] for r in result.rule_ids if r in books]
    return ordered + [b for r, b in books.items() if r not in set(result.rule_ids)]


def _fires(result: ReplayResult) -> Iterator[dict[str, Any]]:
    return result.ledger.fires.rows()


def _trades(result: ReplayResult) -> Iterator[dict[str, Any]]:
    for row in result.ledger.trades.rows():
        yield {**row, "entry_iso": iso(row["entry_time"]), "exit_iso": iso(row["exit_time"])}


def _fractions() -> str:
    return ", ".join(f"{f:g}" for f in CANDLE_FRACTIONS)


def _has_candles(result: ReplayResult) -> bool:
    return any(d.format != "ws-jsonl" for d in result.data)


def _header(result: ReplayResult) -> list[str]:
    data = "; ".join(
        f"{d.path.name} ({d.format}" + (f", {d.symbol}, {_interval(d.interval)} candles" if d.symbol else "") + ")"
        for d in result.data
    )
    lines = [
        f"rules: {', '.join(result.rule_files)}",
        f"data: {data}",
        f"period: {iso(result.start)} to {iso(result.end)}, {result.ticks:,} ticks",
        f"wallet: {balances_text(result.wallet_start)} -> {balances_text(result.wallet_end)}"
        f" ({result.open_orders} open orders at the end)",
    ]
    if result.futures is not None:
        lines.append(futures_text(result.futures))
    if result.skipped:
        lines.append("skipped frames (no tick): " + ", ".join(f"{kind} {n:,}" for kind, n in
                                                             sorted(result.skipped.items())))
    if result.unwatched:
        counts = ", ".join(f"{symbol} {count:,}" for symbol, count in result.unwatched.items())
        lines.append(f"skipped: {sum(result.unwatched.values()):,} ticks of pairs no rule watches ({counts})")
    if _has_candles(result):
        lines.append(CANDLE_NOTE.format(fractions=_fractions()))
    return lines


def futures_text(futures: dict[str, Any]) -> str:
    """The paper Futures account's line: collateral, orders, fills, positions, margin (USD)."""
    positions = ", ".join(f"{p['symbol']} {p['size']:+f} @ {number(p['price'])}" for p in futures["positions"])
    margin = futures["margin"]
    return (f"futures (paper account; not in the equity, PnL and order counts below): collateral "
            f"{balances_text(futures['collateral_start'])} -> {balances_text(futures['collateral'])}; "
            f"{futures['orders']} orders, {futures['fills']} fills, fees {number(futures['fees'])}; positions at "
            f"the end: {positions or 'none'}; unrealised PnL {margin['pnl']:+.2f} USD, equity "
            f"{margin['equity']:.2f} USD" + ("" if futures["collateral_start"] else
                                              " (unfunded, so every Futures order is refused for margin: fund it "
                                              "with --futures-wallet USD=5000 or the config's "
                                              "paper_wallet.futures_balances)"))


def _totals(result: ReplayResult) -> list[str]:
    t = result.ledger.totals(result.period)
    ccy = t["valuation"] or ""
    orders = t["orders"]
    equity = "-" if t["equity_start"] is None else f"{t['equity_start']:,.2f} -> {t['equity_end']:,.2f} {ccy}"
    if t["not_valued"]:
        equity += f" (not valued, no price in {ccy}: {', '.join(t['not_valued'])})"
    ret = "-" if t["return"] is None else f"{t['return'] * 100:+.2f}%"
    drawdown = f"{t['max_drawdown']:,.2f} {ccy} ({t['max_drawdown_pct'] * 100:.2f}%)"
    return [
        f"equity (wallet at the last prices): {equity}, return {ret} on the starting balances",
        f"max drawdown {drawdown}; exposure {t['exposure'] * 100:.1f}% of the time "
        f"({format_duration(t['exposure_seconds']) if t['exposure_seconds'] else '0s'})",
        f"fires {result.fire_count:,}, held back {result.held_back:,}; orders placed {orders['placed']:,}, "
        f"filled {orders['filled']:,}, partially filled {orders['partially_filled']:,}, "
        f"expired {orders['expired']:,}, cancelled {orders['cancelled']:,}",
        f"fees {_money(t['fees'])}; PnL realised {_money(t['realised_pnl'])}, unrealised (marked at the last "
        f"price) {_money(t['unrealised_pnl'])}, total {_money(t['pnl'])}; trades {t['trades']:,} "
        f"({t['wins']:,} won)",
    ]


def _money(values: dict[str, str]) -> str:
    return ", ".join(f"{number(Decimal(v))} {asset}" for asset, v in values.items()) or "0"


def _interval(seconds: float | None) -> str:
    return format_duration(seconds) if seconds else "-"


def _rule_cells(result: ReplayResult, book: Any) -> list[str]:
    d = book.to_dict(result.period)
    o = d["orders"]
    return [book.rule_id, str(d["fires"]), str(o["placed"]), str(o["filled"]), str(o["partially_filled"]),
            str(o["expired"]), str(o["cancelled"]), _money(d["fees"]), _money(d["realised_pnl"]),
            _money(d["unrealised_pnl"]), f"{d['max_drawdown']:,.2f}", f"{d['exposure'] * 100:.1f}%",
            ", ".join(f"{k} {n}" for k, n in sorted(d["not_fired"].items())) or "-", str(d["errors"])]


def _error_cells(result: ReplayResult) -> Iterator[list[str]]:
    for e in result.ledger.errors:
        yield [iso(e["time"]), e["rule"], e["where"] or "-", f"{e['by']}: {e['reason']}"]


def _trade_cells(t: dict[str, Any]) -> list[str]:
    return [t["entry_iso"], t["exit_iso"], t["pair"], t["direction"], t["entry_rule"], t["exit_rule"],
            number(t["entry_price"]), number(t["exit_price"]), number(t["size"]), number(_round(t["fee"])),
            number(_round(t["pnl"]))]


def _round(text: str) -> Decimal:
    return Decimal(text).quantize(Decimal("0.00000001")).normalize()


def _fire_cells(f: dict[str, Any]) -> list[str]:
    intents = "; ".join(f["intents"]) or "-"
    if f.get("stopped"):
        intents += f" [stopped by {f['stopped']['by']}: {f['stopped']['reason']}]"
    fills = [f"{iso(x['time'])} {x['side']} {number(x['volume'])} {x['pair']} @ {number(x['price'])} "
             f"(fee {number(x['fee'])})" for x in f["fills"]]
    fills += [f"{iso(x['time'])} {x['status']}" for x in f.get("ended", ())]
    return [f["iso"], f["rule"], number(f["price"]), intents, "; ".join(fills) or "-",
            balances_text(f["balances_after"])]


def _text_table(headers: list[str], rows: Callable[[], Iterable[list[str]]]) -> Iterator[str]:
    """Two passes over the rows (widths, then lines), so they are never all in memory."""
    widths = [len(h) for h in headers]
    count = 0
    for row in rows():
        count += 1
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if not count:
        yield "  (none)"
        return
    yield ("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))).rstrip()
    for row in rows():
        yield ("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
