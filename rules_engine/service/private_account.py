"""The service's private account feed: in live mode, Kraken's private WebSocket v2
(`rules_engine.kraken.private_feed`) tells the engine of fills, cancels, expiries and balance
changes as they happen. Other modes have nothing to listen to (dry-run's paper wallet
reports its own fills; validate places nothing)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rules_engine.core.events import Event
from rules_engine.execution.live import LiveExecutor
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.private_feed import PrivateFeed
from rules_engine.service.connect_budget import ConnectBudget


def private_feed_for(executor: object, endpoints: KrakenEndpoints, on_events: Callable[[Iterable[Event]], None],
                     clock: Callable[[], float], budget: ConnectBudget | None = None) -> PrivateFeed | None:
    """A feed for a live executor (its signed client gets the token), else None; with a
    worker's `budget`, each connection attempt first takes one from it (`service.connect_budget`)."""
    inner = getattr(executor, "inner", executor)
    if not isinstance(inner, LiveExecutor):
        return None
    return PrivateFeed(endpoints.ws_auth_v2, inner.websockets_token, on_events, clock=clock,
                       before_connect=None if budget is None else budget.take)
