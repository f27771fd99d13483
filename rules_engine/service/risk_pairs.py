"""The engine config's risk limits name pairs as the rules do: any name Kraken gives a spot pair
(`BTC/USD`, `XBT/USD`, `XXBTZUSD`) stands for its altname (`XBTUSD`), the name the rules' orders
carry, and a futures product id (`PF_XBTUSD`) for itself. A name that is neither refuses the
start: `allowed_pairs: [BTC/USD]` blocked every order, and `max_order_notional: {BTCUSD: 5000}`
limited nothing, each without a word."""

from __future__ import annotations

import dataclasses
import re

from rules_engine.config import EngineConfig
from rules_engine.pairs import PairRegistry
from rules_engine.service.startup import StartupError

_FUTURES_SYMBOL = re.compile(r"^[A-Z]{2}_[A-Z0-9_]+$")  # as rules.symbols: a product id such as PF_XBTUSD


def with_risk_pairs(config: EngineConfig, registry: PairRegistry) -> EngineConfig:
    """`config` with its risk limits' pair names as the orders name them (StartupError for
    a name Kraken does not list, with the nearest one)."""
    risk, problems = config.risk, []

    def name(where: str, raw: str) -> str:
        pair = registry.get(raw)
        if pair is not None:
            return pair.altname
        if _FUTURES_SYMBOL.fullmatch(raw.upper()):
            return raw.upper()
        near = registry.suggest(raw)
        problems.append(f"{config.source}: risk/{where}: unknown Kraken pair {raw!r}"
                        + (f" (did you mean {near!r}?)" if near else ""))
        return raw

    allowed = None if risk.allowed_pairs is None else frozenset(name("allowed_pairs", p)
                                                                for p in sorted(risk.allowed_pairs))
    notional = {k if k == "default" else name("max_order_notional", k): v
                for k, v in risk.max_order_notional.items()}
    if problems:
        raise StartupError("invalid engine config:\n  " + "\n  ".join(problems))
    return dataclasses.replace(config, risk=dataclasses.replace(risk, allowed_pairs=allowed,
                                                                  max_order_notional=notional))
