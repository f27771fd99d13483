"""The `signal` trigger: a webhook signal.

    - type: signal
      source: tradingview                      # signals POSTed to /signals/tradingview
      where: "signal.action == 'buy'"          # optional: the rule fires only when it is true

A `where` that reads a value not known yet (`balance(...)` before any balance was seen) makes
the rule wait for it, as a guard does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rules_engine.core.env import EvalFailure, StateNotReady, evaluate_bool
from rules_engine.core.events import Signal
from rules_engine.core.model import Expr, Rule, SourceRef, TriggerSpec, WatcherClass
from rules_engine.core.trace import Step
from rules_engine.core.watch import Fire, Lapsed, Watcher
from rules_engine.pairs import PairRegistry
from rules_engine.registry import Needs, TriggerType, names_for_triggers
from rules_engine.rules.context import BuildContext
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.signal_fields import signal_field_diagnostics, where_diagnostics
from rules_engine.rules.yaml_source import JsonPath

NAMES = {
    "signal": "the payload: `signal.action`, `signal['qty']`",
    "source": "",
}

SCHEMA: dict[str, Any] = {
    "title": "signal trigger",
    "description": "Fires on a signal POSTed to /signals/{source} whose payload passes `where`.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "source"],
    "properties": {
        "type": {"const": "signal"},
        "source": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
            "patternErrorMessage": "a signal source is lower-case letters, digits, '-' or '_', e.g. tradingview",
        },
        "where": {"$ref": "#/$defs/expression"},
    },
}


class SignalWatcher(Watcher["SignalTrigger"]):
    """Signal triggers by source; each trigger's `where` is evaluated on the payload."""

    events = (Signal,)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._by_source: dict[str, list[tuple[Rule, int, SignalTrigger]]] = {}

    def add(self, rule: Rule, index: int, trigger: SignalTrigger, saved: str | None) -> None:
        self._by_source.setdefault(trigger.source, []).append((rule, index, trigger))

    def on_event(self, signal: Signal, step: Step) -> list[Fire]:
        found: dict[str, Fire] = {}
        for rule, index, trigger in self._by_source.get(signal.source, ()):
            if rule.id in found:
                continue
            context = {"trigger": "signal", "signal": dict(signal.payload), "source": signal.source}
            passed = self._where(rule, index, trigger, context, step, signal.signal_id)
            if isinstance(passed, StateNotReady):
                found[rule.id] = Fire(rule, index, context, passed)
                continue
            if not passed:
                continue
            step.record("trigger", rule.id, trigger=index, state="fired", source=signal.source,
                        signal_id=signal.signal_id)
            found[rule.id] = Fire(rule, index, context)
        return list(found.values())

    def recheck(self, rule: Rule, index: int, context: dict[str, Any], step: Step,
                ready: bool) -> dict[str, Any] | Lapsed | StateNotReady:
        if ready:
            return context
        trigger = rule.triggers[index]
        if not isinstance(trigger, SignalTrigger):  # the engine rechecks a trigger with its own watcher
            raise TypeError(f"trigger {index} of {rule.id} is not a signal trigger")
        passed = self._where(rule, index, trigger, context, step, None)
        if isinstance(passed, StateNotReady):
            return passed
        if not passed:
            return Lapsed("where is false", {})
        step.record("trigger", rule.id, trigger=index, state="fired", source=trigger.source)
        return context

    def _where(self, rule: Rule, index: int, trigger: SignalTrigger, context: dict[str, Any], step: Step,
               signal_id: str | None) -> bool | StateNotReady:
        """Whether the payload passes `where` (traced); an error counts as false."""
        if trigger.where_expr is None:
            return True
        env = self.host.env(context, rule.id, step.now)
        try:
            passed = evaluate_bool(trigger.where_expr, env, f"triggers[{index}].where")
        except EvalFailure as failure:
            if failure.not_ready is not None:
                return failure.not_ready
            step.record("error", rule.id, reason=failure.reason, signal_id=signal_id, **failure.detail())
            return False
        step.record("guard", rule.id, trigger=index, where=trigger.where_expr.source, result=passed,
                    signal_id=signal_id)
        return passed


@dataclass(frozen=True)
class SignalTrigger(TriggerSpec):
    """Fires on a signal POSTed to `/signals/{source}` whose payload passes `where`."""

    source: str
    where_expr: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["signal"] = "signal"
    watcher: ClassVar[WatcherClass] = SignalWatcher
    provides: ClassVar[frozenset[str]] = frozenset(NAMES)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], defaults: Mapping[str,
          Any]) -> SignalTrigger | None:
    """A signal trigger; its `where` may use the names a signal provides."""
    where_expr = None
    if "where" in raw:
        where_expr = ctx.expression(path + ("where",), raw["where"], names_for_triggers(["signal"]), condition=True)
        if where_expr is None:
            return None
        if "source" in raw:
            ctx.diagnostics.extend(where_diagnostics(ctx.document.rule_id_at(path), where_expr, raw["source"]))
    if not ctx.accepts(path):
        return None
    return SignalTrigger(source=raw["source"], where_expr=where_expr, where=ctx.source(path))


def needs(trigger: SignalTrigger) -> Needs:
    return Needs(signal_sources=(trigger.source,))


def warnings(rule: Rule, index: int, trigger: SignalTrigger, pairs: PairRegistry) -> Iterator[Diagnostic]:
    """`unknown-signal-field` and `impossible-signal-value`: the `signal.<field>` names (and the
    values compared with them) the rule's guard and actions read that its sources' payload schemas
    rule out (`rules_engine.rules.signal_fields`; each trigger's `where` is checked when it is
    built). Checked once per rule, at its first signal trigger."""
    signal_triggers = [(i, t) for i, t in enumerate(rule.triggers) if isinstance(t, SignalTrigger)]
    if signal_triggers[0][0] != index:
        return
    yield from signal_field_diagnostics(rule, [t.source for _, t in signal_triggers])


TYPE = TriggerType(
    name="signal",
    spec=SignalTrigger,
    summary="a signal POSTed to the webhook, optionally filtered by `where`",
    schema=SCHEMA,
    build=build,
    names=NAMES,
    needs=needs,
    warnings=warnings,
)
