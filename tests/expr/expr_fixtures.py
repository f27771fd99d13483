"""Names and an evaluation environment shared by the expression tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rules_engine.registry import names_for_triggers

PRICE_NAMES = names_for_triggers(["price"])
SIGNAL_NAMES = names_for_triggers(["signal"])
TIMER_NAMES = names_for_triggers(["timer"])
ALL_NAMES = PRICE_NAMES | SIGNAL_NAMES | TIMER_NAMES


def balances(asset: str) -> Decimal:
    return {"ZUSD": Decimal("1500.25"), "XXBT": Decimal("0.5")}[asset]


def make_env() -> dict[str, Any]:
    """A price-and-signal environment as the engine would build it."""
    return {
        "price": Decimal("43000.5"),
        "bid": Decimal("43000"),
        "ask": Decimal("43001"),
        "mid": Decimal("43000.5"),
        "last": Decimal("43000.5"),
        "symbol": "XBTUSD",
        "signal": {"action": "buy", "qty": Decimal("0.01"), "meta": {"tags": ["a", "b"], "score": 7}},
        "scheduled_time": 1_700_000_000.0,
        "now": 1_700_000_000.5,
        "rule_id": "dip-buyer",
        "trigger": "price",
        "balance": balances,
        "price_of": lambda symbol: {"XBTUSD": Decimal("43000.5"), "ETHUSD": Decimal("2300")}[symbol],
        "open_orders": lambda pair: [{"txid": "O1", "price": Decimal("42000"), "vol": Decimal("0.1")}],
    }
