"""Pairs and assets named literally inside expressions: `price_of('XMR/USD')`, `balance('USD')`.

Each is checked against the AssetPairs snapshot when the rule is loaded, so a typo is a
validation error with a did-you-mean rather than a rule that never fires ("no price seen").
A pair that Kraken does not list as `online` gets a warning naming its status. Futures product
ids (`PF_XBTUSD`) are not in AssetPairs and pass unchecked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from rules_engine.expr import Expression
from rules_engine.pairs import FUTURES_PREFIXED, PairRegistry, asset_code, modern_asset
from rules_engine.rules.diagnostics import Severity, did_you_mean


@dataclass(frozen=True)
class NameProblem:
    message: str
    hint: str | None
    code: str
    severity: Severity = "error"


def pair_hint(registry: PairRegistry, name: str) -> str | None:
    """'did you mean "BTC/USD"?' for a name close to a known pair; for an asset alone ("ETH"), a
    pair of it; else None."""
    code = name.strip().upper()
    if code in asset_names(registry):
        pairs = [f"{code}/{quote}" for quote in ("USD", "EUR", "USDT", "USDC") if registry.get(f"{code}/{quote}")]
        if pairs:
            return f"{name} is an asset; a pair names two, e.g. " + " or ".join(f'"{pair}"' for pair in pairs[:2])
    close = registry.suggest(name)
    return f'did you mean "{close}"?' if close else None


@lru_cache(maxsize=8)
def asset_names(registry: PairRegistry) -> dict[str, str]:
    """Every accepted spelling of every asset in the registry -> Kraken's asset id."""
    names: dict[str, str] = {}
    for kraken_id in sorted(registry.asset_ids()):
        code = asset_code(kraken_id)
        for spelling in (kraken_id, code, modern_asset(code)):
            names.setdefault(spelling.upper(), kraken_id)
    return names


def literal_name_problems(expression: Expression, registry: PairRegistry) -> Iterator[NameProblem]:
    """Problems with the pairs passed to `price_of` and the assets passed to `balance`."""
    names = expression.names
    if "price_of" in names:
        for symbol in expression.literal_arguments("price_of"):
            if FUTURES_PREFIXED.match(symbol.strip().upper()):
                continue
            pair = registry.get(symbol)
            if pair is None:
                yield NameProblem(f"price_of('{symbol}'): unknown Kraken pair", pair_hint(registry, symbol),
                                  "unknown-pair")
            elif pair.status != "online":
                yield NameProblem(f'price_of(\'{symbol}\'): Kraken lists {pair.altname} as "{pair.status}"',
                                  None, "pair-not-online", "warning")
    if "balance" in names:
        assets = asset_names(registry)
        for asset in expression.literal_arguments("balance"):
            if asset.strip().upper() not in assets:
                yield NameProblem(f"balance('{asset}'): unknown Kraken asset",
                                  did_you_mean(asset.strip().upper(), sorted(assets)), "unknown-asset")
