"""The `notify` action: a message (a template) to a notification `channel` (default `default`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rules_engine.core.intents import Notify
from rules_engine.core.model import ActionSpec, Expr, SourceRef, Template
from rules_engine.core.runs import ActionRun
from rules_engine.registry import ActionType
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

SCHEMA: dict[str, Any] = {
    "title": "notify action",
    "description": "Send a message to a notification channel.",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "message"],
    "properties": {
        "type": {"const": "notify"},
        "if": {"$ref": "#/$defs/expression"},
        "message": {"$ref": "#/$defs/message"},
        "channel": {"type": "string", "minLength": 1},
    },
}


@dataclass(frozen=True)
class NotifyAction(ActionSpec):
    """Send `message` (rendered when the action runs) to `channel`."""

    message: Template
    channel: str = "default"
    condition: Expr | None = None
    where: SourceRef | None = field(default=None, compare=False)
    type: Literal["notify"] = "notify"

    def run(self, run: ActionRun) -> None:
        run.emit(Notify(intent_id=run.intent_id(), rule_id=run.rule.id, decision_id=run.decision_id,
                        channel=self.channel, message=run.render(self.message, "message")))


def build(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Collection[str]) -> NotifyAction | None:
    message = ctx.template(path + ("message",), raw["message"], names) if "message" in raw else None
    if message is None or not ctx.accepts(path):
        return None
    return NotifyAction(message=message, channel=raw.get("channel", "default"))


TYPE = ActionType(
    name="notify",
    spec=NotifyAction,
    summary="a message to a notification channel",
    schema=SCHEMA,
    build=build,
)
