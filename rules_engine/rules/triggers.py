"""Trigger builders: one small function per trigger type, registered by name.

Adding a trigger type means one function here (decorated with `@trigger_type("name")`), its
definition in `schemas/rules.schema.json`, and its class in `rules_engine.model`. Each builder gets
the schema-valid mapping and the file's `defaults`, and returns the model object (or None after
reporting what is wrong).
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

from rules_engine.expr import names_for_triggers
from rules_engine.model import Market, PriceTrigger, Rearm, SignalTrigger, TimerTrigger, Trigger
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


def build_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Trigger | None:
    return TRIGGER_BUILDERS[raw["type"]](ctx, path, raw, defaults)


@trigger_type("price")
def price_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> PriceTrigger | None:
    market = Market(raw.get("market", defaults.get("market", "spot")))
    if market is Market.SPOT:
        symbol = spot_pair(ctx, path + ("symbol",), raw["symbol"])
    else:
        symbol = futures_symbol(ctx, path + ("symbol",), raw["symbol"])
    key = "crosses_above" if "crosses_above" in raw else "crosses_below"
    level = Decimal(raw[key])
    rearm = _rearm(ctx, path + ("rearm",), raw.get("rearm"))
    if symbol is None or (rearm is None and "rearm" in raw):
        return None
    return PriceTrigger(
        symbol=symbol,
        market=market,
        field=raw.get("field", defaults.get("field", "last")),
        direction="above" if key == "crosses_above" else "below",
        level=level,
        rearm=rearm,
        where=ctx.source(path),
    )


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
    return SignalTrigger(source=raw["source"], where_expr=where_expr, where=ctx.source(path))


@trigger_type("timer")
def timer_trigger(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> TimerTrigger | None:
    if "every" in raw:
        every = ctx.duration(path + ("every",), raw["every"])
        if every is None:
            return None
        if every <= 0:
            ctx.report(path + ("every",), "every: must be longer than 0s", code="invalid-value")
            return None
        return TimerTrigger(every=every, where=ctx.source(path))
    cron = raw["cron"].strip()
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        ctx.report(
            path + ("cron",),
            f'"{cron}" is not a cron schedule; write five fields: minute hour day-of-month month day-of-week, e.g. "*/5 * * * *"',
            code="invalid-cron",
        )
        return None
    timezone_path = path + ("timezone",) if "timezone" in raw else ("defaults", "timezone")
    timezone = raw.get("timezone", defaults.get("timezone", "UTC"))
    if not check_timezone(ctx, timezone_path, timezone):
        return None
    return TimerTrigger(cron=cron, timezone=timezone, where=ctx.source(path))


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
