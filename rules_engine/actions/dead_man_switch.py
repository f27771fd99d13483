"""The `dead_man_switch` action: Kraken CancelAllOrdersAfter. Kraken cancels every order unless
the switch is renewed within `timeout` (whole seconds below 1d; `0s` turns it off)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rules_engine.core.intents import DeadManSwitch
from rules_engine.core.model import ActionSpec, Expr, SourceRef
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

# Kraken: CancelAllOrdersAfter's timeout must be "less than 86400" seconds.
MAX_DEAD_MAN_TIMEOUT = 86400

SCHEMA: dict[str, Any] = {
    "title": "dead_man_switch action",
    "description": (
        "Kraken CancelAllOrdersAfter: cancel every order unless called again within `timeout` (0s "
        "disables)."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "timeout"],
    "properties": {
        "type": {"const": "dead_man_switch"},
        "if": {"$ref": "#/$defs/expression"},
        "timeout": {"$ref": "#/$defs/duration"},
    },
}


@dataclass(frozen=True)
class DeadManSwitchAction(ActionSpec):
    """CancelAllOrdersAfter(timeout); 0 disables the switch."""

    timeout: float
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["dead_man_switch"] = "dead_man_switch"
    order_market: ClassVar[str | None] = "spot"

    def run(self, run: ActionRun) -> str:
        intent = DeadManSwitch(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id,
                               timeout=int(self.timeout))
        return run.send(intent, "spot")


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
          names: Collection[str]) -> DeadManSwitchAction | None:
    timeout = ctx.duration(path + ("timeout",), raw["timeout"]) if "timeout" in raw else None
    if timeout is None:
        return None
    if timeout != int(timeout) or not 0 <= timeout < MAX_DEAD_MAN_TIMEOUT:
        ctx.report(
            path + ("timeout",),
            "timeout must be whole seconds below 1d (Kraken's limit); 0s disables the switch",
            code="invalid-value",
        )
        return None
    return DeadManSwitchAction(timeout=timeout) if ctx.accepts(path) else None


TYPE = ActionType(
    name="dead_man_switch",
    spec=DeadManSwitchAction,
    summary="Kraken CancelAllOrdersAfter: cancel everything unless renewed in time",
    schema=SCHEMA,
    build=build,
)
