"""The simulator's Futures exchange is the paper one (`rules_engine.paper.futures`), which
dry-run also runs, so both match Futures orders with the same code."""

from rules_engine.paper.futures import (
    LIMITED,
    ORDER_TYPES,
    PERPETUAL_BASES,
    STOPS,
    FuturesExchange,
    FuturesFill,
    FuturesOrder,
    Position,
    Product,
    SendResult,
    default_products,
)

__all__ = ["LIMITED", "ORDER_TYPES", "PERPETUAL_BASES", "STOPS", "FuturesExchange", "FuturesFill", "FuturesOrder",
           "Position", "Product", "SendResult", "default_products"]
