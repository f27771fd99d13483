"""The model builder: turn one schema-checked rule file into `rules_engine.core.model.Rule` objects.

Each trigger and action is built by its type's builder (`rules_engine.registry`; the types
live in `rules_engine/triggers/` and `rules_engine/actions/`), which gets the file's `defaults`
(`market` and `field` for price triggers, `timezone` for cron timers); `cooldown`, `max_fires`,
`mode` and `priority` are merged into the rule itself here. A rule's guard and action
expressions may use the names all of its trigger types provide
(`rules_engine.registry.names_for_triggers`).

A rule the schema rejected is still checked, part by part: every value the schema accepted gets
the checks it would get in a valid rule (expressions and their names, templates, pairs, assets,
symbols, durations, cron schedules, time zones), so one run reports every independent problem.
What the schema rejected is left out, so nothing is reported twice or as a consequence of an
error already reported. Only rules the schema accepted whole are built.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from rules_engine.core.model import ActionSpec, Guard, MaxFires, Rule, TriggerSpec
from rules_engine.registry import action_types, env_names, names_for_triggers, trigger_types
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

_Type = TypeVar("_Type")


def build_rules(ctx: BuildContext) -> list[Rule]:
    """Every rule of the document the schema accepted, built, after checking every rule. None is
    built when the file's defaults are wrong (a rule may depend on any of them)."""
    data = ctx.fields((), ctx.document.data, nested=("defaults", "rules"))
    defaults = ctx.fields(("defaults",), data.get("defaults"), nested=("max_fires",))
    defaults_valid = _check_defaults(ctx, defaults) and ctx.accepts(("defaults",))
    written = data.get("rules")
    rules = []
    for index, raw in enumerate(written if isinstance(written, list) else []):
        rule = build_rule(ctx, ("rules", index), raw, defaults)
        if rule is not None:
            rules.append(rule)
    return rules if defaults_valid else []


def _check_defaults(ctx: BuildContext, defaults: Mapping[str, Any]) -> bool:
    before = ctx.error_count()
    for key in ("cooldown",):
        if key in defaults:
            ctx.duration(("defaults", key), defaults[key])
    if "timezone" in defaults:
        ctx.timezone(("defaults", "timezone"), defaults["timezone"])
    return ctx.error_count() == before


def build_rule(ctx: BuildContext, path: JsonPath, raw: Any, defaults: Mapping[str, Any]) -> Rule | None:
    """One rule, or None after reporting every problem in it (or when the schema rejected it)."""
    before = ctx.error_count()
    raw = ctx.fields(path, raw, nested=("triggers", "when", "actions", "max_fires"))
    written_triggers = _items(raw, "triggers")
    triggers = [build_trigger(ctx, path + ("triggers", i), t, defaults) for i, t in enumerate(written_triggers)]
    names = _expression_names(ctx, path + ("triggers",), written_triggers)
    when = build_guard(ctx, path + ("when",), raw["when"], names) if "when" in raw else None
    actions = [build_action(ctx, path + ("actions", i), a, names) for i, a in enumerate(_items(raw, "actions"))]
    cooldown = _duration(ctx, path, raw, defaults, "cooldown")
    hold = _duration(ctx, path, raw, {}, "for")
    max_fires = _max_fires(ctx, path, raw, defaults)
    # A part builds to None only after an error was reported in it or when the schema rejected it
    # (and so the rule): the length checks add no case, they let the types say so.
    built_triggers = tuple(t for t in triggers if t is not None)
    built_actions = tuple(a for a in actions if a is not None)
    if (ctx.error_count() > before or not ctx.accepts(path)
            or len(built_triggers) < len(triggers) or len(built_actions) < len(actions)):
        return None
    return Rule(
        id=raw["id"],
        triggers=built_triggers,
        actions=built_actions,
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


def _items(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _expression_names(ctx: BuildContext, path: JsonPath, triggers: list[Any]) -> frozenset[str]:
    """The names all of the rule's triggers provide. A trigger the schema rejected limits nothing
    (fixing it may change its type); with no trigger it accepted, any trigger's names are allowed."""
    types = {t["type"] for i, t in enumerate(triggers) if ctx.accepts(path + (i,))}
    # with none accepted: any trigger's names, so that no name is reported that the fixed triggers may provide
    return names_for_triggers(sorted(types)) if types else env_names()


def build_trigger(ctx: BuildContext, path: JsonPath, raw: Any, defaults: Mapping[str, Any]) -> TriggerSpec | None:
    """Build one trigger with its type's builder; of a trigger the schema rejected, check the fields
    it accepted (a trigger whose type it rejected has nothing to check: its fields mean nothing
    without the type). Each builder checks every field it is given and returns the spec, or None
    after reporting what is wrong or when the schema rejected anything in the trigger."""
    fields = ctx.fields(path, raw)
    kind = _registered(trigger_types(), fields)
    return None if kind is None else kind.build(ctx, path, fields, defaults)


def build_action(ctx: BuildContext, path: JsonPath, raw: Any, names: Collection[str]) -> ActionSpec | None:
    """Build one action with its type's builder; None when anything in it was reported as an error.
    Of an action the schema rejected, check the fields it accepted (an action whose type it
    rejected has nothing to check). `names` are what its expressions may use."""
    before = ctx.error_count()
    fields = ctx.fields(path, raw, nested=("close",))  # a place_order's close order: checked field by field
    kind = _registered(action_types(), fields)
    if kind is None:
        return None
    condition = ctx.expression(path + ("if",), fields["if"], names, condition=True) if "if" in fields else None
    action = kind.build(ctx, path, fields, names)
    if action is None or ctx.error_count() > before:
        return None
    return replace(action, condition=condition, where=ctx.source(path))


def _registered(types: Mapping[str, _Type], fields: Mapping[str, Any]) -> _Type | None:
    """The registered type the part's `type` names (None when missing: the schema rejected it)."""
    name = fields.get("type")
    return types.get(name) if isinstance(name, str) else None


def build_guard(ctx: BuildContext, path: JsonPath, raw: Any, names: Collection[str]) -> Guard | None:
    """A `when` condition: an expression string, or `all:` / `any:` / `not:` of nested conditions.
    Of a condition the schema rejected, the expressions it accepted are still checked."""
    if isinstance(raw, str):
        expr = ctx.expression(path, raw, names, condition=True) if ctx.accepts(path) else None
        return None if expr is None else Guard("expr", expr=expr, where=ctx.source(path))
    children: list[Guard | None] = []
    for kind, body in raw.items() if isinstance(raw, dict) else ():
        if kind == "not":
            children.append(build_guard(ctx, path + ("not",), body, names))
        elif kind in ("all", "any") and isinstance(body, list):
            children.extend(build_guard(ctx, path + (kind, i), item, names) for i, item in enumerate(body))
    built = [child for child in children if child is not None]
    if not ctx.accepts(path) or len(built) < len(children):
        return None
    (kind, _), = raw.items()
    return Guard(kind, children=tuple(built), where=ctx.source(path))


def _duration(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str, Any],
              key: str) -> float | None:
    if key in raw:
        return ctx.duration(path + (key,), raw[key])
    if key in defaults:
        return ctx.duration(("defaults", key), defaults[key])
    return None


def _max_fires(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str,
               Any]) -> MaxFires | None:
    spec_path = path + ("max_fires",) if "max_fires" in raw else ("defaults", "max_fires")
    spec = ctx.fields(spec_path, raw["max_fires"] if "max_fires" in raw else defaults.get("max_fires"))
    if "window" not in spec:
        return None
    window = ctx.duration(spec_path + ("window",), spec["window"])
    if window is not None and window <= 0:
        ctx.report(spec_path + ("window",), "the max_fires window must be longer than 0s", code="invalid-value")
        return None
    if window is None or not ctx.accepts(spec_path):
        return None
    return MaxFires(count=spec["count"], window=window)
