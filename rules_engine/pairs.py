"""Kraken asset pairs and their many names.

Kraken names one market several ways: the pair id (`XXBTZUSD`), the REST altname
(`XBTUSD`), the WebSocket v1 `wsname` (`XBT/USD`) and the WebSocket v2 symbol
(`BTC/USD`, which uses the modern asset codes: XBT -> BTC, XDG -> DOGE). A
`PairRegistry` resolves any of them to one `PairInfo`; rules store the altname.

The registry is built from an AssetPairs response (`{"error": [], "result": {...}}`):
the snapshot shipped in `rules_engine/data/asset_pairs.json` by default (Kraken's complete
list, 1,434 pairs in January 2026), so validation works offline; `rules-engine pairs refresh`
replaces it from the exchange when online, and `rules-engine --pairs FILE ...` (or
`use_snapshot`) points one process at another AssetPairs response.

The file is parsed once per process and shared (the simulator, fees and the registry read
the same mapping); the registry indexes every name up front but builds a `PairInfo` only
when a pair is first looked up, so loading it costs little more than the JSON parse.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from rules_engine.core.futures_ids import FUTURES_PREFIXED as FUTURES_PREFIXED  # one definition, the core's
from rules_engine.core.futures_ids import FUTURES_PRODUCT_ID as FUTURES_PRODUCT_ID
from rules_engine.resources import data_path

SNAPSHOT_FILE = "asset_pairs.json"
# The fields of each pair the registry reads, one row per pair, with the SHA-256 of the
# snapshot it was made from: parsing this is a fraction of parsing the whole response.
INDEX_FILE = "asset_pairs.index.json"
INDEX_FIELDS = ("altname", "wsname", "base", "quote", "pair_decimals", "lot_decimals", "cost_decimals",
                "ordermin", "costmin", "tick_size", "status")

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
    cost_decimals: int = 8

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
        cost_decimals=int(raw.get("cost_decimals", 8)),
    )


def _names(pair_id: str, raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of a raw AssetPairs entry, as `PairInfo.names` gives them."""
    altname = raw["altname"]
    wsname = raw.get("wsname") or altname
    base, _, quote = wsname.partition("/")
    return (pair_id, altname, wsname, f"{modern_asset(base)}/{modern_asset(quote)}")


_MAX_HITS = 10_000  # spellings remembered by `PairRegistry.get`


def _compact(name: str) -> str:
    return name.replace("/", "").upper()


class PairRegistry:
    """Resolve any of Kraken's names for a spot pair (case-insensitive)."""

    def __init__(self, pairs: Iterable[PairInfo]):
        self._raw: dict[str, Mapping[str, Any]] = {}
        self._built: dict[str, PairInfo] = {}
        self._index: dict[str, str] = {}
        self._altnames: dict[str, str] | None = None
        self._hits: dict[str, PairInfo] = {}
        for pair in pairs:
            self._add(pair.pair_id, pair.names())
            self._built[pair.pair_id] = pair

    def _add(self, pair_id: str, names: Iterable[str]) -> None:
        for name in names:
            self._index.setdefault(name.upper(), pair_id)
        self._index.setdefault(pair_id.upper(), pair_id)

    @classmethod
    def from_asset_pairs(cls, response: Mapping[str, Any]) -> PairRegistry:
        """Build from an AssetPairs response body or its `result` mapping."""
        result = response.get("result", response)
        if not isinstance(result, Mapping):
            raise ValueError("an AssetPairs response needs a `result` object")
        registry = cls(())
        for pair_id in sorted(result):
            raw = result[pair_id]
            registry._add(pair_id, _names(pair_id, raw))
            registry._raw[pair_id] = raw
        return registry

    @classmethod
    def from_index(cls, index: Mapping[str, Any]) -> PairRegistry:
        """Build from an index written by `index_of` (rows of `INDEX_FIELDS`)."""
        fields = tuple(index["fields"])
        return cls.from_asset_pairs({row[0]: dict(zip(fields, row[1:], strict=True)) for row in index["pairs"]})

    @classmethod
    def from_file(cls, path: Path) -> PairRegistry:
        return cls.from_asset_pairs(json.loads(Path(path).read_text()))

    def check(self) -> PairRegistry:
        """Build every pair now (raising on a malformed entry); returns self."""
        for _ in self:
            pass
        return self

    def _info(self, pair_id: str) -> PairInfo:
        pair = self._built.get(pair_id)
        if pair is None:
            pair = self._built[pair_id] = _pair_from_json(pair_id, self._raw[pair_id])
        return pair

    def __iter__(self) -> Iterator[PairInfo]:
        return iter([self._info(pid) for pid in sorted(self._raw.keys() | self._built.keys())])

    def __len__(self) -> int:
        return len(self._raw.keys() | self._built.keys())

    def get(self, name: str) -> PairInfo | None:
        """The pair for any of its names, or None."""
        pair = self._hits.get(name)  # the hot path: names already looked up, exactly as given
        if pair is not None:
            return pair
        pair_id = self._index.get(name.strip().upper())
        if pair_id is None:
            return None
        pair = self._info(pair_id)
        if len(self._hits) < _MAX_HITS:
            self._hits[name] = pair
        return pair

    def resolve(self, name: str) -> PairInfo:
        """Like `get`, but raise KeyError with a readable message."""
        pair = self.get(name)
        if pair is None:
            raise KeyError(f"unknown Kraken pair {name!r}")
        return pair

    def asset_ids(self) -> set[str]:
        """Kraken's id of every base and quote asset (`XXBT`, `ZUSD`), without building pairs."""
        found = {raw[key] for raw in self._raw.values() for key in ("base", "quote")}
        found.update(asset for pair in self._built.values() for asset in (pair.base, pair.quote))
        return found

    def altnames(self) -> Mapping[str, str]:
        """Every accepted name (upper case), and each slashed name without its slash where that
        is not another pair's name (`BTCUSD`, as TradingView writes it) -> the altname (built once)."""
        if self._altnames is None:
            names = {name: self._altname(pair_id) for name, pair_id in self._index.items()}
            for name, pair_id in self._index.items():
                if "/" in name:
                    names.setdefault(_compact(name), self._altname(pair_id))
            self._altnames = names
        return self._altnames

    def _altname(self, pair_id: str) -> str:
        raw = self._raw.get(pair_id)
        return raw["altname"] if raw is not None else self._built[pair_id].altname

    def known_names(self) -> list[str]:
        """Every accepted name (upper case)."""
        return sorted(self._index)

    def suggest(self, name: str) -> str | None:
        """The known name closest to one that is not (compared without slashes), spelled
        with a slash if `name` has one: `BTCUSDX` -> `BTC/USD`, `XBTUSDD` -> `XBTUSD`."""
        spellings: dict[str, list[str]] = {}
        for key in self._index:
            spellings.setdefault(_compact(key), []).append(key)
        match = difflib.get_close_matches(_compact(name), list(spellings), n=1, cutoff=0.6)
        if not match:
            return None
        slashed = "/" in name
        candidates = spellings[match[0]]
        return next((c for c in candidates if ("/" in c) == slashed), candidates[0])


_override: Path | None = None


def snapshot_path() -> Path:
    """The AssetPairs response in use: `use_snapshot`'s file, else the one shipped."""
    return _override if _override is not None else data_path(SNAPSHOT_FILE)


@lru_cache(maxsize=1)
def snapshot_result() -> dict[str, Any]:
    """The `result` mapping of the AssetPairs response in use (parsed once per process)."""
    raw = json.loads(snapshot_path().read_text())
    result = raw.get("result", raw) if isinstance(raw, dict) else None
    if not isinstance(result, dict) or not result:
        raise ValueError(f"{snapshot_path()}: not an AssetPairs response (no pairs in `result`)")
    return result


def use_snapshot(path: Path | str | None) -> PairRegistry:
    """Make another AssetPairs response (a file) the default for this process, or the
    shipped one again with None; returns the new default registry. Raises ValueError or
    OSError (and keeps the old default) when the file cannot be used."""
    global _override
    previous = _override
    _override = None if path is None else Path(path)
    snapshot_result.cache_clear()
    default_registry.cache_clear()
    try:
        return default_registry().check()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _override = previous
        snapshot_result.cache_clear()
        default_registry.cache_clear()
        if isinstance(exc, OSError):
            raise
        raise ValueError(f"{path}: not a usable AssetPairs response ({exc.__class__.__name__}: {exc})") from None


def index_of(result: Mapping[str, Any], snapshot: bytes) -> dict[str, Any]:
    """The registry's index of an AssetPairs `result`, tied to the snapshot file's bytes."""
    rows = [[pair_id, *(raw.get(name) for name in INDEX_FIELDS)] for pair_id, raw in sorted(result.items())]
    return {"snapshot_sha256": hashlib.sha256(snapshot).hexdigest(), "fields": list(INDEX_FIELDS), "pairs": rows}


def write_index(snapshot: Path) -> Path:
    """Write the index beside a snapshot file (`rules-engine pairs refresh` does this)."""
    data = snapshot.read_bytes()
    raw = json.loads(data)
    target = snapshot.with_name(INDEX_FILE)
    target.write_text(json.dumps(index_of(raw.get("result", raw), data), separators=(",", ":")) + "\n")
    return target


def _indexed_registry(snapshot: Path) -> PairRegistry | None:
    """The registry from the index beside `snapshot`, if there is one made from these bytes."""
    index_path = snapshot.with_name(INDEX_FILE)
    try:
        index = json.loads(index_path.read_bytes())
        if index.get("snapshot_sha256") != hashlib.sha256(snapshot.read_bytes()).hexdigest():
            return None
        return PairRegistry.from_index(index)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@lru_cache(maxsize=1)
def default_registry() -> PairRegistry:
    """The registry from the AssetPairs snapshot in use (`snapshot_path`): from the index
    shipped beside it when it matches the snapshot, else from the snapshot itself."""
    indexed = _indexed_registry(snapshot_path()) if _override is None else None
    return indexed if indexed is not None else PairRegistry.from_asset_pairs(snapshot_result())
