"""Keeps the executor's nonce reservations ahead of the clock, off the order path.

A Kraken client writes its key's nonce high-water mark to the state store (durably) when a
nonce would pass the reservation (`kraken.nonce.NonceSource`). Done on an order's way, that
is a second disk write before the order leaves; the service's housekeeping calls
`keep_nonces_ahead` every `snapshot_interval` instead, which renews every reservation with
less than half its lease left (`execution.factory.NONCE_LEASE_SECONDS`).
"""

from __future__ import annotations

from typing import Any

from rules_engine.kraken.nonce import NonceSource


def nonce_sources(executor: Any) -> list[NonceSource]:
    """The nonce sources of the executor's Kraken clients (none in dry-run)."""
    inner = getattr(executor, "inner", executor)
    sources: list[NonceSource] = []
    for name in ("spot", "futures"):
        source = getattr(getattr(inner, name, None), "nonces", None)
        if isinstance(source, NonceSource) and all(source is not s for s in sources):
            sources.append(source)
    return sources


def keep_nonces_ahead(executor: Any) -> int:
    """Renew every reservation running low (see the module docstring); how many were renewed."""
    return sum(source.keep_ahead() for source in nonce_sources(executor))
