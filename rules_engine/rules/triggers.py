"""Trigger builders: one small function per trigger type, registered by name.

Adding a trigger type means one function here (decorated with `@trigger_type("name")`), its
definition in `schemas/rules.schema.json`, and its class in `rules_engine.core.model`. Each builder gets
the fields of the trigger that passed the schema (`BuildContext.fields`) and those of the file's
`defaults`, checks every field it is given, and returns the model object, or None after reporting
what is wrong or when the schema rejected anything in the trigger (then some fields are missing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from rules_engine.core.model import Market, PriceTrigger, Rearm, SignalTrigger, TimerTrigger, Trigger
from rules_engine.expr import names_for_triggers
from rules_engine.rules.context import BuildContext
from rules_engine.rules.diagnostics import did_you_mean
from rules_engine.rules.symbols import futures_symbol, spot_pair
from rules_engine.rules.yaml_source import JsonPath

TriggerBuilder = Callable[[BuildContext, JsonPath, Mapping[str, Any], Mapping[str, Any]], "Trigger | None"]
TRIGGER_BUILDERS: dict[str, TriggerBuilder] = {}


def trigger_type(name: str) -> Callable[[TriggerBuilder], TriggerBuilder]:
    def register(builder: TriggerBuilder) -> TriggerBuilder:
        TRIGGER_BUILDERS[name] = builder
        return builder

    return register


def build_trigger(ctx: BuildContext, path: JsonPath, raw: Any, defaults: Mapping[str, Any]) -> Trigger | None:
    """Build one trigger; of a trigger the schema rejected, check the fields it accepted (a trigger
    whose type it rejected has nothing to check: its fields mean nothing without the type)."""
    fields = ctx.fields(path, raw)
    builder = TRIGGER_BUILDERS.get(fields.get("type"))
    return None if builder is None else builder(ctx, path, fields, defaults)


@trigger_type("price")
def price_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> PriceTrigger | None:
    market = _market(ctx, path, raw, defaults)
    symbol = None
    if "symbol" in raw and market is not None:
        check_symbol = spot_pair if market is Market.SPOT else futures_symbol
        symbol = check_symbol(ctx, path + ("symbol",), raw["symbol"])
    rearm = _rearm(ctx, path + ("rearm",), raw.get("rearm"))
    if symbol is None or (rearm is None and "rearm" in raw) or not ctx.accepts(path):
        return None
    key = "crosses_above" if "crosses_above" in raw else "crosses_below"
    return PriceTrigger(
        symbol=symbol,
        market=market,
        field=raw.get("field", defaults.get("field", "last")),
        direction="above" if key == "crosses_above" else "below",
        level=Decimal(raw[key]),
        rearm=rearm,
        where=ctx.source(path),
    )


def _market(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Market | None:
    """The trigger's market, or None when it is unknown: the schema rejected the `market` that
    applies, or it may be there misspelled (the symbol cannot be checked without its market)."""
    if "market" in raw:
        return Market(raw["market"])
    if not ctx.accepts(path + ("market",)) or ctx.has_unknown_keys(path):
        return None
    if "market" in defaults:
        return Market(defaults["market"])
    data = ctx.document.data
    written_defaults = data.get("defaults", {}) if isinstance(data, dict) else {}
    if not isinstance(written_defaults, dict) or not ctx.accepts(("defaults", "market")) or ctx.has_unknown_keys(("defaults",)):
        return None
    return Market.SPOT


def _rearm(ctx: BuildContext, path: JsonPath, raw: Any) -> Rearm | None:
    if raw is None:
        return None
    text = str(raw)
    percent = text.endswith("%")
    amount = Decimal(text.rstrip("%"))
    if amount <= 0 or (percent and amount >= 100):
        ctx.report(path, "rearm must be more than 0 (and a percent less than 100%)", code="invalid-value")
        return None
    return Rearm(amount=amount, percent=percent)


@trigger_type("signal")
def signal_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> SignalTrigger | None:
    where_expr = None
    if "where" in raw:
        where_expr = ctx.expression(path + ("where",), raw["where"], names_for_triggers(["signal"]))
        if where_expr is None:
            return None
    if not ctx.accepts(path):
        return None
    return SignalTrigger(source=raw["source"], where_expr=where_expr, where=ctx.source(path))


@trigger_type("timer")
def timer_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> TimerTrigger | None:
    every = _every(ctx, path + ("every",), raw["every"]) if "every" in raw else None
    cron = _cron(ctx, path + ("cron",), raw["cron"]) if "cron" in raw else None
    timezone = raw.get("timezone", defaults.get("timezone", "UTC"))
    zone_known = True
    if "cron" in raw or "timezone" in raw:
        timezone_path = path + ("timezone",) if "timezone" in raw else ("defaults", "timezone")
        zone_known = check_timezone(ctx, timezone_path, timezone)
    if not ctx.accepts(path) or not zone_known:
        return None
    if "every" in raw:
        return None if every is None else TimerTrigger(every=every, where=ctx.source(path))
    return None if cron is None else TimerTrigger(cron=cron, timezone=timezone, where=ctx.source(path))


def _every(ctx: BuildContext, path: JsonPath, raw: str) -> float | None:
    every = ctx.duration(path, raw)
    if every is not None and every <= 0:
        ctx.report(path, "every: must be longer than 0s", code="invalid-value")
        return None
    return every


def _cron(ctx: BuildContext, path: JsonPath, raw: str) -> str | None:
    cron = raw.strip()
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        ctx.report(
            path,
            f'"{cron}" is not a cron schedule; write five fields: minute hour day-of-month month day-of-week, e.g. "*/5 * * * *"',
            code="invalid-cron",
        )
        return None
    return cron


def check_timezone(ctx: BuildContext, path: JsonPath, name: str) -> bool:
    """Report (once per position) a time zone that is not an IANA zone name."""
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError, OSError):
        ctx.report(path, f'unknown time zone "{name}"', hint=did_you_mean(name, _zone_names()), code="unknown-timezone")
        return False


@lru_cache(maxsize=1)
def _zone_names() -> list[str]:
    return sorted(available_timezones())
