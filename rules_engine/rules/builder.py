"""The model builder: turn one schema-checked rule file into `rules_engine.model.Rule` objects.

`defaults` are merged into each rule here: `market` and `field` into price triggers, `timezone`
into cron timers, and `cooldown`, `max_fires`, `mode`, `priority` into the rule itself. A rule's
guard and action expressions may use the names all of its trigger types provide
(`rules_engine.expr.names_for_triggers`).
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from rules_engine.expr import names_for_triggers
from rules_engine.model import Guard, MaxFires, Rule
from rules_engine.rules.actions import build_action
from rules_engine.rules.context import BuildContext
from rules_engine.rules.triggers import TRIGGER_BUILDERS, build_trigger, check_timezone
from rules_engine.rules.yaml_source import JsonPath


def build_rules(ctx: BuildContext, skip: Collection[int] = ()) -> list[Rule]:
    """Build every rule of the document except those at the indexes in `skip` (already invalid)."""
    data = ctx.document.data
    defaults: Mapping[str, Any] = data.get("defaults") or {}
    if not _check_defaults(ctx, defaults):
        return []
    rules = []
    for index, raw in enumerate(data.get("rules") or []):
        if index in skip:
            continue
        rule = build_rule(ctx, ("rules", index), raw, defaults)
        if rule is not None:
            rules.append(rule)
    return rules


def _check_defaults(ctx: BuildContext, defaults: Mapping[str, Any]) -> bool:
    before = ctx.error_count()
    for key in ("cooldown",):
        if key in defaults:
            ctx.duration(("defaults", key), defaults[key])
    if "timezone" in defaults:
        check_timezone(ctx, ("defaults", "timezone"), defaults["timezone"])
    return ctx.error_count() == before


def build_rule(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Rule | None:
    """One rule, or None after reporting every problem in it."""
    before = ctx.error_count()
    triggers = [build_trigger(ctx, path + ("triggers", i), t, defaults) for i, t in enumerate(raw["triggers"])]
    names = names_for_triggers(sorted({t["type"] for t in raw["triggers"] if t["type"] in TRIGGER_BUILDERS}))
    when = build_guard(ctx, path + ("when",), raw["when"], names) if "when" in raw else None
    actions = [build_action(ctx, path + ("actions", i), a, names) for i, a in enumerate(raw["actions"])]
    cooldown = _duration(ctx, path, raw, defaults, "cooldown")
    hold = _duration(ctx, path, raw, {}, "for")
    max_fires = _max_fires(ctx, path, raw, defaults)
    if ctx.error_count() > before:
        return None
    return Rule(
        id=raw["id"],
        triggers=tuple(triggers),
        actions=tuple(actions),
        description=raw.get("description", ""),
        enabled=raw.get("enabled", True),
        priority=raw.get("priority", defaults.get("priority", 0)),
        when=when,
        cooldown=cooldown,
        max_fires=max_fires,
        hold=hold,
        mode=raw.get("mode", defaults.get("mode", "single")),
        source=ctx.source(path),
    )


def build_guard(ctx: BuildContext, path: JsonPath, raw: Any, names: Collection[str]) -> Guard | None:
    """A `when` condition: an expression string, or `all:` / `any:` / `not:` of nested conditions."""
    if isinstance(raw, str):
        expr = ctx.expression(path, raw, names)
        return None if expr is None else Guard("expr", expr=expr, where=ctx.source(path))
    (kind, body), = raw.items()
    if kind == "not":
        child = build_guard(ctx, path + ("not",), body, names)
        return None if child is None else Guard("not", children=(child,), where=ctx.source(path))
    children = [build_guard(ctx, path + (kind, i), item, names) for i, item in enumerate(body)]
    if any(child is None for child in children):
        return None
    return Guard(kind, children=tuple(children), where=ctx.source(path))


def _duration(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any], key: str) -> float | None:
    if key in raw:
        return ctx.duration(path + (key,), raw[key])
    if key in defaults:
        return ctx.duration(("defaults", key), defaults[key])
    return None


def _max_fires(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> MaxFires | None:
    spec, spec_path = (raw.get("max_fires"), path + ("max_fires",)) if "max_fires" in raw else (defaults.get("max_fires"), ("defaults", "max_fires"))
    if spec is None:
        return None
    window = ctx.duration(spec_path + ("window",), spec["window"])
    if window is not None and window <= 0:
        ctx.report(spec_path + ("window",), "the max_fires window must be longer than 0s", code="invalid-value")
        return None
    return None if window is None else MaxFires(count=spec["count"], window=window)
