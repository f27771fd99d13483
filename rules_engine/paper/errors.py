"""The one exception the simulator's pure layers raise: a Kraken error string.

Spot errors are Kraken's own strings (`EOrder:Insufficient funds`); the transport puts
them in the `{"error": [...]}` envelope. Futures errors are the futures API's error
names (`authenticationError`, `apiLimitExceeded`) for its `{"result": "error"}` envelope.
"""

from __future__ import annotations


class ExchangeError(Exception):
    """A request Kraken would refuse, carrying the exact error string it would send."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class FuturesError(Exception):
    """A Futures request refused with a top-level `{"result": "error", "error": ...}`."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error
