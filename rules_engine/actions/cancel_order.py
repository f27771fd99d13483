"""The `cancel_order` action: Kraken Spot CancelOrder, by exactly one of `txid`, `cl_ord_id`
(each a string or an =expression), `userref`, or `own: true` (the open orders this rule placed;
nothing to cancel skips the action)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rules_engine.actions._fields import values
from rules_engine.core.intents import CancelOrder
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Value
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "cancel_order action",
    "description": (
        "Kraken Spot CancelOrder: by txid, by cl_ord_id, by userref, or the open orders this rule placed "
        "(own: true)."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"const": "cancel_order"},
        "if": {"$ref": "#/$defs/expression"},
        "txid": {"$ref": "#/$defs/text_value"},
        "cl_ord_id": {"$ref": "#/$defs/text_value"},
        "userref": {"type": "integer", "minimum": -2147483648, "maximum": 2147483647},
        "own": {"const": True, "errorMessage": "own: true cancels the orders this rule placed"},
    },
    "allOf": [
        {
            "oneOf": [
                {"required": ["txid"]},
                {"required": ["cl_ord_id"]},
                {"required": ["userref"]},
                {"required": ["own"]},
            ],
            "errorMessage": (
                "cancel_order needs exactly one of txid:, cl_ord_id:, userref: or own: true"
            ),
        },
    ],
}


@dataclass(frozen=True)
class CancelOrderAction(ActionSpec):
    """CancelOrder by one selector; `own=True` means the orders this rule placed."""

    txid: Value = None
    cl_ord_id: Value = None
    userref: int | None = None
    own: bool = False
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["cancel_order"] = "cancel_order"
    order_market: ClassVar[str | None] = "spot"

    def run(self, run: ActionRun) -> str | None:
        targets = run.cancel_targets("spot", self.own, self.txid, self.cl_ord_id, ("txid", "cl_ord_id"))
        if targets is None:
            return None
        txids, cl_ord_ids = targets
        intent = CancelOrder(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id,
                             txids=txids, cl_ord_ids=cl_ord_ids, userref=None if self.own else self.userref)
        return run.send(intent, "spot", txids, cl_ord_ids)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
          names: Collection[str]) -> CancelOrderAction | None:
    ids = values(ctx, path, raw, names, ("txid", "cl_ord_id"), numeric=False)
    if not ctx.accepts(path):
        return None
    return CancelOrderAction(userref=raw.get("userref"), own=raw.get("own", False), **ids)


TYPE = ActionType(
    name="cancel_order",
    spec=CancelOrderAction,
    summary="Kraken Spot CancelOrder: by txid, cl_ord_id, userref, or the rule's own orders",
    schema=SCHEMA,
    build=build,
)
