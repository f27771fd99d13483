"""Kraken's Spot nonce check per API key, with the key's optional nonce window.

Window 0 (the default, and what a fenced failover needs): a nonce is accepted only if it is
strictly greater than the last one accepted for the key ("less than or equal to the last
accepted nonce" is `EAPI:Invalid nonce`). A window W > 0 is Kraken's per-key "nonce
window" setting: a nonce below the highest accepted one still passes if it is within W
ticks of it and has not been used. Kraken documents the window only loosely ("if a nonce is
received with a count lower than a nonce used within the calculated time … it will not count
against you"); reuse of an exact nonce being refused and the bound being inclusive are this
simulator's reading.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass
class KeyNonces:
    """One key's accepted nonces: the highest, and (with a window) those within it."""

    window: int = 0
    highest: int = 0
    recent: list[int] = field(default_factory=list)  # sorted; only with a window

    def accept(self, nonce: int) -> bool:
        """Record `nonce` and return True if Kraken would accept it for this key."""
        if nonce > self.highest:
            self.highest = nonce
            if self.window:
                bisect.insort(self.recent, nonce)
                del self.recent[:bisect.bisect_left(self.recent, nonce - self.window)]
            return True
        if not self.window or nonce < self.highest - self.window:
            return False
        at = bisect.bisect_left(self.recent, nonce)
        if at < len(self.recent) and self.recent[at] == nonce:
            return False
        self.recent.insert(at, nonce)
        return True


class NonceBook:
    """Every key's nonces (`SpotAuth` keeps one)."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyNonces] = {}

    def set_window(self, api_key: str, window: int) -> None:
        """The key's nonce window in nonce ticks (0: strictly increasing)."""
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(f"nonce_window must be a whole number >= 0, not {window!r}")
        self._keys.setdefault(api_key, KeyNonces()).window = window

    def window(self, api_key: str) -> int:
        entry = self._keys.get(api_key)
        return entry.window if entry else 0

    def accept(self, api_key: str, nonce: int) -> bool:
        return self._keys.setdefault(api_key, KeyNonces()).accept(nonce)

    def was_accepted(self, api_key: str, nonce: int) -> bool:
        """Whether `nonce` is the key's highest accepted one or an accepted one within its window."""
        entry = self._keys.get(api_key)
        if entry is None:
            return False
        at = bisect.bisect_left(entry.recent, nonce)
        return nonce == entry.highest or (at < len(entry.recent) and entry.recent[at] == nonce)

    def last(self, api_key: str) -> int:
        """The highest nonce accepted for the key (0 before any)."""
        entry = self._keys.get(api_key)
        return entry.highest if entry else 0
