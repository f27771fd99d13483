"""Markets and assets named in rules, checked against Kraken's asset-pair list (no network).

- Spot pairs may be written any way Kraken names them (`XBTUSD`, `XBT/USD`, `BTC/USD`, `XXBTZUSD`);
  the model stores the altname (`XBTUSD`).
- Futures symbols are product ids (`PF_XBTUSD`), stored in upper case.
- Assets may be written as Kraken's asset id (`ZUSD`, `XXBT`) or a common code (`USD`, `XBT`,
  `BTC`); the model stores Kraken's asset id, the key `Balance` reports it under.
"""

from __future__ import annotations

from rules_engine.pairs import FUTURES_PRODUCT_ID
from rules_engine.rules.context import BuildContext
from rules_engine.rules.diagnostics import did_you_mean
from rules_engine.rules.literal_names import asset_names, pair_hint
from rules_engine.rules.yaml_source import JsonPath


def spot_pair(ctx: BuildContext, path: JsonPath, raw: str) -> str | None:
    """The altname of the pair written at `path`; reports unknown and not-online pairs."""
    name = ctx.literal(path, raw, "a pair")
    if name is None:
        return None
    pair = ctx.registry.get(name)
    if pair is None:
        hint = pair_hint(ctx.registry, name)
        if FUTURES_PRODUCT_ID.fullmatch(name.upper()):
            hint = (f"{name} is a Kraken Futures product id: a trigger on it needs market: futures, and futures "
                    "orders are futures_send_order actions")
        ctx.report(path, f'unknown Kraken pair "{name}"', hint=hint, code="unknown-pair")
        return None
    if pair.status != "online":
        ctx.report(
            path,
            f'Kraken lists {pair.altname} as "{pair.status}"; orders may be refused',
            code="pair-not-online",
            severity="warning",
        )
    return pair.altname


def futures_symbol(ctx: BuildContext, path: JsonPath, raw: str) -> str | None:
    """The upper-case product id written at `path` (`pf_xbtusd` -> `PF_XBTUSD`)."""
    name = ctx.literal(path, raw, "a futures symbol")
    if name is None:
        return None
    symbol = name.upper()
    if not FUTURES_PRODUCT_ID.fullmatch(symbol):
        hint = None
        if ctx.registry.get(name) is not None:
            hint = f"{name} is a spot pair: for its price, leave out market: futures (and defaults.market)"
        ctx.report(path, f'"{name}" is not a Kraken Futures product id such as PF_XBTUSD', hint=hint,
                   code="unknown-symbol")
        return None
    if "BTC" in symbol:
        ctx.report(path, f"Kraken Futures names bitcoin XBT, so there is no product {symbol}",
                   hint=f'did you mean "{symbol.replace("BTC", "XBT")}"?', code="unknown-symbol", severity="warning")
    return symbol


def asset(ctx: BuildContext, path: JsonPath, raw: str) -> str | None:
    """Kraken's asset id for the asset written at `path` (`USD` -> `ZUSD`, `BTC` -> `XXBT`)."""
    name = ctx.literal(path, raw, "an asset")
    if name is None:
        return None
    names = asset_names(ctx.registry)
    found = names.get(name.upper())
    if found is None:
        hint = did_you_mean(name.upper(), sorted(names))
        ctx.report(path, f'unknown Kraken asset "{name}"', hint=hint, code="unknown-asset")
    return found
