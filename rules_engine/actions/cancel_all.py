"""The `cancel_all` action: Kraken Spot CancelAll, every open spot order on the account."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rules_engine.core.intents import CancelAll
from rules_engine.core.model import ActionSpec, Expr, SourceRef
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "cancel_all action",
    "description": "Kraken Spot CancelAll: cancel every open order.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": {"const": "cancel_all"}, "if": {"$ref": "#/$defs/expression"}},
}


@dataclass(frozen=True)
class CancelAllAction(ActionSpec):
    """Cancel every open spot order."""

    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["cancel_all"] = "cancel_all"
    order_market: ClassVar[str | None] = "spot"

    def run(self, run: ActionRun) -> str:
        return run.send(CancelAll(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id), "spot")


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Collection[str]) -> CancelAllAction | None:
    return CancelAllAction() if ctx.accepts(path) else None


TYPE = ActionType(
    name="cancel_all",
    spec=CancelAllAction,
    summary="Kraken Spot CancelAll: every open spot order",
    schema=SCHEMA,
    build=build,
)
