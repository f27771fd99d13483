"""The risk limits name pairs as the rules do: any name Kraken gives a spot pair (`BTC/USD`,
`XBT/USD`, `XXBTZUSD`) stands for its altname (`XBTUSD`), the name the rules' orders carry, and
a futures product id (`PF_XBTUSD`) for itself. A name that is neither is an error: it refuses
the start (and a replay, and a rule test's `limits:`). `allowed_pairs: [BTC/USD]` blocked every
order, and `max_order_notional: {BTCUSD: 5000}` limited nothing, each without a word. Shared by
`run`, `replay` and `rules-engine test`, so that the limits a test or a replay rehearses are the
engine's."""

from __future__ import annotations

import dataclasses

from rules_engine.config import ConfigError, EngineConfig
from rules_engine.core.risk import RiskLimits
from rules_engine.pairs import FUTURES_PRODUCT_ID, PairRegistry


def risk_pairs(risk: RiskLimits, registry: PairRegistry) -> tuple[RiskLimits, list[str]]:
    """`risk` with its pair names as the orders name them, and a problem per name Kraken does
    not list (`allowed_pairs: unknown Kraken pair 'X'`, with the nearest name)."""
    problems: list[str] = []

    def name(where: str, raw: str) -> str:
        pair = registry.get(raw)
        if pair is not None:
            return pair.altname
        if FUTURES_PRODUCT_ID.fullmatch(raw.upper()):
            return raw.upper()
        near = registry.suggest(raw)
        problems.append(f"{where}: unknown Kraken pair {raw!r}" + (f" (did you mean {near!r}?)" if near else ""))
        return raw

    allowed = None if risk.allowed_pairs is None else frozenset(name("allowed_pairs", p)
                                                                for p in sorted(risk.allowed_pairs))
    notional = {k if k == "default" else name("max_order_notional", k): v
                for k, v in risk.max_order_notional.items()}
    return dataclasses.replace(risk, allowed_pairs=allowed, max_order_notional=notional), problems


def with_risk_pairs(config: EngineConfig, registry: PairRegistry) -> EngineConfig:
    """`config` with its risk limits' pair names as the orders name them (ConfigError for a name
    Kraken does not list: `invalid engine config:` and a line per name)."""
    risk, problems = risk_pairs(config.risk, registry)
    if problems:
        raise ConfigError("invalid engine config:\n  " + "\n  ".join(f"{config.source}: risk/{p}" for p in problems))
    return dataclasses.replace(config, risk=risk)
