"""A replay's report: a table of every fire, a summary per rule, as text, Markdown and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rules_engine.core.trace import jsonable
from rules_engine.durations import format_duration
from rules_engine.replay.data import CANDLE_FRACTIONS
from rules_engine.replay.describe import balances_text, fill_text, intent_text, iso, number
from rules_engine.replay.outcomes import Outcome
from rules_engine.replay.replay import ReplayResult, RuleSummary, summarize

CANDLE_NOTE = (
    "Each candle plays four ticks at {fractions} of its interval: open, then the shorter path through "
    "the extremes (rising candle: low then high; falling: high then low), then close; bid = ask = last."
)


def _rule_ids(result: ReplayResult, rule_ids: Sequence[str] | None) -> list[str]:
    return list(rule_ids) if rule_ids is not None else sorted({o.rule_id for o in result.outcomes})


def fire_row(result: ReplayResult, outcome: Outcome) -> dict[str, Any]:
    symbol, price = result.where(outcome)
    row: dict[str, Any] = {
        "time": outcome.time,
        "iso": iso(outcome.time),
        "rule": outcome.rule_id,
        "decision_id": outcome.decision_id,
        "symbol": symbol,
        "price": price,
        "intents": [intent_text(i) for i in outcome.intents],
        "intent_details": [i.to_dict() for i in outcome.intents],
        "fills": [{"time": f.time, "iso": iso(f.time), "txid": f.txid, "pair": f.pair, "side": f.side,
                   "ordertype": f.ordertype, "volume": f.volume, "price": f.price, "fee": f.fee}
                  for f in outcome.fills],
        "balances_after": outcome.balances_after or {},
        "status": outcome.status,
        "stopped": None if outcome.block is None else {"by": outcome.block.by, "reason": outcome.block.reason},
    }
    return row


def report_json(result: ReplayResult, rule_ids: Sequence[str] | None = None,
                chart: str | None = None) -> dict[str, Any]:
    """The machine-readable report (`--format json`, report.json): Decimals as strings."""
    document = {
        "rules": list(result.rule_files),
        "data": [{"path": d.path.as_posix(), "format": d.format, "symbol": d.symbol, "interval": d.interval}
                 for d in result.data],
        "candles": CANDLE_NOTE.format(fractions=_fractions()) if _has_candles(result) else None,
        "period": {"start": iso(result.start), "end": iso(result.end), "start_time": result.start,
                   "end_time": result.end},
        "ticks": result.ticks,
        "skipped": {"ticks": sum(result.skipped.values()), "by_symbol": result.skipped},
        "wallet": {"start": result.wallet_start, "end": result.wallet_end, "open_orders": result.open_orders},
        "fires": [fire_row(result, o) for o in result.fires],
        "summary": [s.to_dict() for s in summarize(result, _rule_ids(result, rule_ids))],
        "fills": len(result.fills),
        "chart": chart,
    }
    return jsonable(document)


def render_text(result: ReplayResult, rule_ids: Sequence[str] | None = None, files: Sequence[str] = ()) -> str:
    """The terminal report: header, fires table, per-rule summary."""
    lines = _header(result)
    lines.append("")
    lines.append(f"Fires ({len(result.fires)})")
    lines.extend(_table(["time", "rule", "price", "intents", "simulated fills", "balances after"],
                        [_fire_cells(result, o) for o in result.fires], markdown=False))
    lines.append("")
    lines.append("Summary per rule")
    lines.extend(_table(_SUMMARY_HEADERS, [_summary_cells(s) for s in summarize(result, _rule_ids(result, rule_ids))],
                        markdown=False))
    if files:
        lines.append("")
        lines.append("Report written: " + ", ".join(files))
    return "\n".join(lines)


def render_markdown(result: ReplayResult, rule_ids: Sequence[str] | None = None, chart: str | None = None) -> str:
    lines = ["# Replay report", ""]
    lines.extend(f"- {line}" for line in _header(result))
    if chart:
        lines += ["", f"![price with fires and fills]({chart})"]
    lines += ["", f"## Fires ({len(result.fires)})", ""]
    lines.extend(_table(["time", "rule", "price", "intents", "simulated fills", "balances after"],
                        [_fire_cells(result, o) for o in result.fires], markdown=True))
    lines += ["", "## Summary per rule", ""]
    lines.extend(_table(_SUMMARY_HEADERS, [_summary_cells(s) for s in summarize(result, _rule_ids(result, rule_ids))],
                        markdown=True))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- helpers

_SUMMARY_HEADERS = ["rule", "fires", "completed", "stopped", "held back (not fired)", "orders", "fills", "traded"]


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
    if result.skipped:
        counts = ", ".join(f"{symbol} {count:,}" for symbol, count in result.skipped.items())
        lines.append(f"skipped: {sum(result.skipped.values()):,} ticks of pairs no rule watches ({counts})")
    if _has_candles(result):
        lines.append(CANDLE_NOTE.format(fractions=_fractions()))
    return lines


def _interval(seconds: float | None) -> str:
    return format_duration(seconds) if seconds else "-"


def _fire_cells(result: ReplayResult, outcome: Outcome) -> list[str]:
    _, price = result.where(outcome)
    intents = "; ".join(intent_text(i) for i in outcome.intents) or "-"
    if outcome.block is not None:
        intents += f" [stopped by {outcome.block.by}: {outcome.block.reason}]"
    fills = "; ".join(f"{iso(f.time)} {fill_text(f)}" for f in outcome.fills) or "-"
    return [iso(outcome.time), outcome.rule_id, number(price), intents, fills, balances_text(outcome.balances_after)]


def _summary_cells(summary: RuleSummary) -> list[str]:
    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{kind} {n}" for kind, n in sorted(values.items())) or "-"

    traded = [f"bought {number(v)} {p}" for p, v in sorted(summary.bought.items())]
    traded += [f"sold {number(v)} {p}" for p, v in sorted(summary.sold.items())]
    return [summary.rule_id, str(summary.fires), str(summary.completed), counts(summary.stopped),
            counts(summary.not_fired), str(summary.orders), str(summary.fills), ", ".join(traded) or "-"]


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return out
    if not rows:
        return ["  (none)"]
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    line = "  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip()]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return out
