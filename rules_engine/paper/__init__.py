"""The paper exchange: Kraken's spot matching and wallet rules as pure code (no I/O, no clock).

The simulator (`rules_engine.sim`) serves it over Kraken's REST and WebSocket APIs; the
engine's dry-run, replay and rule tests trade on it through `rules_engine.execution.paper`.
"""

from rules_engine.paper.errors import ExchangeError, FuturesError
from rules_engine.paper.exchange import Fill, PaperExchange
from rules_engine.paper.fees import FeeRate, FeeSchedule
from rules_engine.paper.orders import CloseSpec, Offset, Order, OrderRequest

__all__ = [
    "CloseSpec",
    "ExchangeError",
    "FeeRate",
    "FeeSchedule",
    "Fill",
    "FuturesError",
    "Offset",
    "Order",
    "OrderRequest",
    "PaperExchange",
]
