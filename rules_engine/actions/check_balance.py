"""The `check_balance` action: stop the remaining actions unless a balance is high enough.

    - type: check_balance
      asset: USD               # Kraken's asset id or a common code (stored as Kraken's id, ZUSD)
      minimum: "=ask * 0.01"   # a number, or an =expression

The core's balance view is used when it is fresh (`balance_max_age`, no order result or fill
since); otherwise the action reads the balance (a `ReadBalance` intent) and compares when the
result arrives.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from rules_engine.actions._fields import given, values
from rules_engine.core.intents import ReadBalance
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Value
from rules_engine.core.runs import ActionRun, Halt
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.symbols import asset
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "check_balance action",
    "description": (
        "Stop the remaining actions (and record why) unless the balance of `asset` is at least `minimum`."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "asset", "minimum"],
    "properties": {
        "type": {"const": "check_balance"},
        "if": {"$ref": "#/$defs/expression"},
        "asset": {
            "description": "A Kraken asset: ZUSD, XXBT, or its common code (USD, XBT, BTC).",
            "type": "string",
            "minLength": 1,
        },
        "minimum": {"$ref": "#/$defs/amount"},
    },
}


@dataclass(frozen=True)
class CheckBalanceAction(ActionSpec):
    """Stop the remaining actions unless `asset` balance >= `minimum`."""

    asset: str
    minimum: Value
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["check_balance"] = "check_balance"

    def run(self, run: ActionRun) -> str | None:
        have = run.state.balances.fresh(self.asset, run.now, run.balance_max_age)
        if have is not None:
            self._compare(run, have)
            return None
        return run.send(ReadBalance(intent_id=run.intent_id("balance"), rule_id=run.rule.id,
                                    decision_id=run.decision_id), "spot")

    def resume(self, run: ActionRun) -> None:
        """The balance read arrived: compare (an asset it does not list holds zero)."""
        found = run.state.balances.lookup(self.asset)
        self._compare(run, Decimal(0) if found is None else found[0])

    def _compare(self, run: ActionRun, have: Decimal) -> None:
        minimum = run.decimal(self.minimum, "minimum")
        passed = have >= minimum
        run.record("action", type="check_balance", asset=self.asset, balance=have, minimum=minimum, passed=passed)
        if not passed:
            raise Halt("blocked", f"check_balance failed: {self.asset} balance {have} is below {minimum}",
                       asset=self.asset, balance=have, minimum=minimum)


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any],
          names: Collection[str]) -> CheckBalanceAction | None:
    kraken_asset = given(ctx, path, raw, "asset", asset)
    fields = values(ctx, path, raw, names, ("minimum",))
    if kraken_asset is None or not ctx.accepts(path):
        return None
    return CheckBalanceAction(asset=kraken_asset, minimum=fields["minimum"])


TYPE = ActionType(
    name="check_balance",
    spec=CheckBalanceAction,
    summary="stop the remaining actions unless a balance is at least a minimum",
    schema=SCHEMA,
    build=build,
)
