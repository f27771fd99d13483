"""Kraken asset pairs and their many names.

Kraken names one market several ways: the pair id (`XXBTZUSD`), the REST altname
(`XBTUSD`), the WebSocket v1 `wsname` (`XBT/USD`) and the WebSocket v2 symbol
(`BTC/USD`, which uses the modern asset codes: XBT -> BTC, XDG -> DOGE). A
`PairRegistry` resolves any of them to one `PairInfo`; rules store the altname.

The registry is built from an AssetPairs response (`{"error": [], "result": {...}}`):
the snapshot shipped in `rules_engine/data/asset_pairs.json` by default, so validation
works offline; `rules-engine pairs refresh` replaces it from the exchange when online.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from rules_engine.resources import data_path

SNAPSHOT_FILE = "asset_pairs.json"

# Legacy Kraken asset codes and their modern names (WS v2, most UIs).
_MODERN_ASSET = {"XBT": "BTC", "XDG": "DOGE"}
# Kraken prefixes legacy crypto codes with X and fiat with Z (XXBT, ZUSD).
_LEGACY_FIAT = {"ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZJPY", "ZCHF", "ZAUD"}


def asset_code(kraken_asset: str) -> str:
    """`XXBT` -> `XBT`, `ZUSD` -> `USD`, `SOL` -> `SOL`."""
    if len(kraken_asset) == 4 and (kraken_asset in _LEGACY_FIAT or kraken_asset[0] == "X"):
        return kraken_asset[1:]
    return kraken_asset


def modern_asset(code: str) -> str:
    """`XBT` -> `BTC`, `XDG` -> `DOGE`, anything else unchanged."""
    return _MODERN_ASSET.get(code, code)


@dataclass(frozen=True)
class PairInfo:
    """One Kraken spot market."""

    pair_id: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    status: str = "online"

    @property
    def v2_symbol(self) -> str:
        """The WebSocket v2 symbol, e.g. `BTC/USD`."""
        base, _, quote = self.wsname.partition("/")
        return f"{modern_asset(base)}/{modern_asset(quote)}"

    @property
    def base_code(self) -> str:
        return asset_code(self.base)

    @property
    def quote_code(self) -> str:
        return asset_code(self.quote)

    def names(self) -> tuple[str, ...]:
        return (self.pair_id, self.altname, self.wsname, self.v2_symbol)


def _pair_from_json(pair_id: str, raw: Mapping[str, Any]) -> PairInfo:
    return PairInfo(
        pair_id=pair_id,
        altname=raw["altname"],
        wsname=raw.get("wsname") or raw["altname"],
        base=raw["base"],
        quote=raw["quote"],
        pair_decimals=int(raw.get("pair_decimals", 8)),
        lot_decimals=int(raw.get("lot_decimals", 8)),
        ordermin=Decimal(str(raw.get("ordermin", "0"))),
        costmin=Decimal(str(raw.get("costmin", "0"))),
        tick_size=Decimal(str(raw.get("tick_size", "0"))),
        status=raw.get("status", "online"),
    )


class PairRegistry:
    """Resolve any of Kraken's names for a spot pair (case-insensitive)."""

    def __init__(self, pairs: Iterable[PairInfo]):
        self._pairs = tuple(pairs)
        self._index: dict[str, PairInfo] = {}
        for pair in self._pairs:
            for name in pair.names():
                self._index.setdefault(name.upper(), pair)

    @classmethod
    def from_asset_pairs(cls, response: Mapping[str, Any]) -> PairRegistry:
        """Build from an AssetPairs response body or its `result` mapping."""
        result = response.get("result", response)
        return cls(_pair_from_json(pid, raw) for pid, raw in sorted(result.items()))

    @classmethod
    def from_file(cls, path: Path) -> PairRegistry:
        return cls.from_asset_pairs(json.loads(Path(path).read_text()))

    def __iter__(self):
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def get(self, name: str) -> PairInfo | None:
        """The pair for any of its names, or None."""
        return self._index.get(name.strip().upper())

    def resolve(self, name: str) -> PairInfo:
        """Like `get`, but raise KeyError with a readable message."""
        pair = self.get(name)
        if pair is None:
            raise KeyError(f"unknown Kraken pair {name!r}")
        return pair

    def known_names(self) -> list[str]:
        """Every accepted name, for 'did you mean' suggestions."""
        return sorted({n for p in self._pairs for n in p.names()})


@lru_cache(maxsize=1)
def default_registry() -> PairRegistry:
    """The registry from the AssetPairs snapshot shipped with the package."""
    return PairRegistry.from_file(data_path(SNAPSHOT_FILE))
