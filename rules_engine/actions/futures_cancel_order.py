"""The `futures_cancel_order` action: Kraken Futures cancelorder, by exactly one of `order_id`,
`cli_ord_id` (each a string or an =expression) or `own: true` (the open orders this rule placed)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rules_engine.actions._fields import values
from rules_engine.core.intents import FuturesCancelOrder
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Value
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "futures_cancel_order action",
    "description": (
        "Kraken Futures cancelorder: by order_id, by cli_ord_id, or the open orders this rule placed "
        "(own: true)."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"const": "futures_cancel_order"},
        "if": {"$ref": "#/$defs/expression"},
        "order_id": {"$ref": "#/$defs/text_value"},
        "cli_ord_id": {"$ref": "#/$defs/text_value"},
        "own": {"const": True, "errorMessage": "own: true cancels the orders this rule placed"},
    },
    "allOf": [
        {
            "oneOf": [{"required": ["order_id"]}, {"required": ["cli_ord_id"]}, {"required": ["own"]}],
            "errorMessage": (
                "futures_cancel_order needs exactly one of order_id:, cli_ord_id: or own: true"
            ),
        },
    ],
}


@dataclass(frozen=True)
class FuturesCancelOrderAction(ActionSpec):
    """Futures cancelorder by order_id / cliOrdId, or the orders this rule placed."""

    order_id: Value = None
    cli_ord_id: Value = None
    own: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["futures_cancel_order"] = "futures_cancel_order"
    order_market: ClassVar[str | None] = "futures"

    def run(self, run: ActionRun) -> str | None:
        targets = run.cancel_targets("futures", self.own, self.order_id, self.cli_ord_id, ("order_id", "cli_ord_id"))
        if targets is None:
            return None
        order_ids, cli_ord_ids = targets
        intent = FuturesCancelOrder(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id,
                                    order_ids=order_ids, cli_ord_ids=cli_ord_ids)
        return run.send(intent, "futures", order_ids, cli_ord_ids)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
          names: Collection[str]) -> FuturesCancelOrderAction | None:
    ids = values(ctx, path, raw, names, ("order_id", "cli_ord_id"), numeric=False)
    if not ctx.accepts(path):
        return None
    return FuturesCancelOrderAction(own=raw.get("own", False), **ids)


TYPE = ActionType(
    name="futures_cancel_order",
    spec=FuturesCancelOrderAction,
    summary="Kraken Futures cancelorder: by order_id, cli_ord_id, or the rule's own orders",
    schema=SCHEMA,
    build=build,
)
