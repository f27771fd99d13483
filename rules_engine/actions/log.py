"""The `log` action: a line in the engine log and the audit trail, from a message template
(`"bought {volume} {symbol} at {price:.2f}"`), at `level` debug, info (default), warning or error."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rules_engine.core.intents import Log
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Template
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "log action",
    "description": "Write a line to the engine log and the audit trail.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "message"],
    "properties": {
        "type": {"const": "log"},
        "if": {"$ref": "#/$defs/expression"},
        "message": {"$ref": "#/$defs/message"},
        "level": {"enum": ["debug", "info", "warning", "error"]},
    },
}


@dataclass(frozen=True)
class LogAction(ActionSpec):
    """Log `message` (rendered when the action runs) at `level`."""

    message: Template
    level: Literal["debug", "info", "warning", "error"] = "info"
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["log"] = "log"

    def run(self, run: ActionRun) -> None:
        run.emit(Log(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id,
                     level=self.level, message=run.render(self.message, "message")))


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Collection[str]) -> LogAction | None:
    message = ctx.template(path + ("message",), raw["message"], names) if "message" in raw else None
    if message is None or not ctx.accepts(path):
        return None
    return LogAction(message=message, level=raw.get("level", "info"))


TYPE = ActionType(
    name="log",
    spec=LogAction,
    summary="a line in the engine log and the audit trail",
    schema=SCHEMA,
    build=build,
)
