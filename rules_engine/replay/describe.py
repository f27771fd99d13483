"""Plain-words text for intents, fills, outcomes, times and balances (test diffs and reports)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from time import gmtime, strftime
from typing import Any

from rules_engine.core import intents as it
from rules_engine.core.decimals import plain
from rules_engine.durations import format_duration
from rules_engine.replay.outcomes import FillRecord, OrderEnd, Outcome

_YEAR_10000 = 253402300800.0


def number(value: Decimal | int | str | None) -> str:
    """A Decimal in plain notation without trailing zeros (`0.01000000` -> `0.01`)."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        text = plain(value)
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def iso(time: float) -> str:
    """`2026-01-01T00:02:00Z` (with milliseconds only when there are any)."""
    if type(time) is float and time.is_integer() and 0 <= time < _YEAR_10000:  # the usual case, no datetime
        return strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(time))
    moment = datetime.fromtimestamp(time, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def offset(time: float, start: float) -> str:
    """`+2m` / `+1h30m` / `+0s` after `start`."""
    return "+" + format_duration(time - start)


def intent_text(intent: it.AnyIntent) -> str:
    if isinstance(intent, it.PlaceOrder):
        text = f"place_order {intent.side} {number(intent.volume)} {intent.pair} {intent.ordertype}"
        if intent.price is not None:
            text += f" @ {number(intent.price)}"
        if intent.price2 is not None:
            text += f" / {number(intent.price2)}"
        return text
    if isinstance(intent, it.FuturesSendOrder):
        text = f"futures_send_order {intent.side} {number(intent.size)} {intent.symbol} {intent.order_type}"
        for label, value in (("limit", intent.limit_price), ("stop", intent.stop_price)):
            if value is not None:
                text += f" {label} {number(value)}"
        return text + (" reduce-only" if intent.reduce_only else "")
    if isinstance(intent, it.CancelOrder):
        targets = list(intent.txids) + list(intent.cl_ord_ids)
        if intent.userref is not None:
            targets.append(f"userref {intent.userref}")
        return "cancel_order " + ", ".join(targets)
    if isinstance(intent, it.FuturesCancelOrder):
        return "futures_cancel_order " + ", ".join(list(intent.order_ids) + list(intent.cli_ord_ids))
    if isinstance(intent, it.CancelAll):
        return f"cancel_all ({intent.market})"
    if isinstance(intent, it.DeadManSwitch):
        return f"dead_man_switch {intent.timeout}s"
    if isinstance(intent, it.Log):
        return f'log {intent.level} "{intent.message}"'
    if isinstance(intent, it.Notify):
        return f'notify {intent.channel} "{intent.message}"'
    return intent.kind


def fill_text(fill: FillRecord) -> str:
    return f"{fill.side} {number(fill.volume)} {fill.pair} @ {number(fill.price)} (fee {number(fill.fee)})"


def end_text(end: OrderEnd) -> str:
    """`expired buy 0.01 XBTUSD limit @ 69000 (placed 2026-...Z)`; a partial fill says how much."""
    text = f"{end.status} {end.side} {number(end.volume)} {end.pair} {end.ordertype}"
    if end.price is not None:
        text += f" @ {number(end.price)}"
    if end.status == "partially filled":
        text += f" ({number(end.filled)} filled)"
    return text + f" (placed {iso(end.placed)})"


def outcome_text(outcome: Outcome) -> str:
    """`fired: place_order buy 0.01 XBTUSD limit @ 70070` or `blocked by guard: guard is false`."""
    if not outcome.fired:
        return f"blocked by {outcome.block.by}: {outcome.block.reason}" if outcome.block else "did not fire"
    parts = [intent_text(i) for i in outcome.intents]
    text = "fired" + (": " + "; ".join(parts) if parts else " (no intents)")
    if outcome.block is not None:
        text += f"; stopped by {outcome.block.by}: {outcome.block.reason}"
    return text


def balances_text(balances: Mapping[str, Any] | None) -> str:
    if not balances:
        return "-"
    return ", ".join(f"{asset} {number(amount)}" for asset, amount in sorted(balances.items()))
