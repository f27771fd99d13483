"""Kraken asset codes, their display decimals, and the raw AssetPairs snapshot.

Balances are keyed by Kraken's own asset codes (`XXBT`, `ZUSD`, `SOL`); `Assets.resolve`
accepts the friendlier spellings too (`XBT`, `BTC`, `USD`).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from rules_engine.pairs import PairInfo, asset_code, modern_asset, snapshot_result

_FIAT = frozenset({"ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZJPY", "ZCHF", "ZAUD"})
_STABLE = frozenset({"USDT", "USDC"})


def asset_pairs_snapshot() -> dict[str, Any]:
    """The `result` mapping of the AssetPairs snapshot in use (parsed once, shared)."""
    return snapshot_result()


def asset_decimals(code: str) -> int:
    """Decimals Kraken uses for an asset's balances: fiat 4, USDT/USDC 8, crypto 10."""
    if code in _FIAT:
        return 4
    return 8 if code in _STABLE else 10


def quantize(amount: Decimal, places: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def fmt(amount: Decimal, places: int) -> str:
    """`Decimal("1.5")`, 8 -> `"1.50000000"` (Kraken's fixed-decimal strings)."""
    return f"{quantize(amount, places):f}"


def round_up(amount: Decimal, places: int) -> Decimal:
    return quantize(amount, places, ROUND_UP)


def round_down(amount: Decimal, places: int) -> Decimal:
    return quantize(amount, places, ROUND_DOWN)


class Assets:
    """The asset codes traded by a set of pairs, resolvable by any of their names."""

    def __init__(self, pairs: Iterable[PairInfo]):
        codes = sorted({p.base for p in pairs} | {p.quote for p in pairs})
        self.codes: tuple[str, ...] = tuple(codes)
        self._index: dict[str, str] = {}
        for code in codes:
            short = asset_code(code)
            for name in (code, short, modern_asset(short)):
                self._index.setdefault(name.upper(), code)

    def get(self, name: str) -> str | None:
        return self._index.get(name.strip().upper())

    def resolve(self, name: str) -> str:
        """`BTC` -> `XXBT`; raise KeyError naming the accepted codes."""
        code = self.get(name)
        if code is None:
            raise KeyError(f"unknown asset {name!r}; known: {', '.join(self.codes)}")
        return code

    @staticmethod
    def fmt(code: str, amount: Decimal) -> str:
        return fmt(amount, asset_decimals(code))
