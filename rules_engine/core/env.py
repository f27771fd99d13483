"""The names an expression can use, and evaluation that never raises out of the core.

Every expression sees every name below; those that do not apply to the trigger that fired
are None (a price rule fired by its timer trigger has `price` None):

- price triggers: `price` (the watched field's value), `bid`, `ask`, `mid`, `last`,
  `symbol`, `market`, `level` (the level crossed)
- signal triggers: `signal` (the payload mapping), `source`
- timer triggers: `scheduled_time`
- always: `trigger` (the trigger type), `rule_id`, `now` (the event's time)
- functions backed by the core's view (no I/O): `balance(asset) -> Decimal`,
  `price_of(symbol) -> Decimal`, `open_orders(pair=None) -> int`
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from rules_engine.core.model import Expr, Guard, Template

CONTEXT_NAMES: tuple[str, ...] = (
    "price", "bid", "ask", "mid", "last", "symbol", "market", "level",
    "signal", "source", "scheduled_time", "trigger",
)
RUNTIME_NAMES: tuple[str, ...] = ("rule_id", "now")
FUNCTION_NAMES: tuple[str, ...] = ("balance", "price_of", "open_orders")
ENV_NAMES: frozenset[str] = frozenset(CONTEXT_NAMES + RUNTIME_NAMES + FUNCTION_NAMES)
"""Pass these as `allowed_names` when compiling rule expressions for the core."""

_BLANK: dict[str, Any] = dict.fromkeys(CONTEXT_NAMES)


class EvalFailure(Exception):
    """An expression or template failed; `where` names the place in the rule."""

    def __init__(self, where: str, source: str, reason: str):
        super().__init__(f"{where}: {source!r}: {reason}")
        self.where = where
        self.source = source
        self.reason = reason

    def detail(self) -> dict[str, str]:
        """Where and what, for a trace record that carries `reason` separately."""
        return {"where": self.where, "expression": self.source}


def build_env(context: Mapping[str, Any], rule_id: str, now: float, functions: Mapping[str, Callable]) -> dict[str, Any]:
    env = dict(_BLANK)
    env.update(context)
    env["rule_id"] = rule_id
    env["now"] = now
    env.update(functions)
    return env


def evaluate(expr: Expr, env: Mapping[str, Any], where: str) -> Any:
    """The expression's value; any failure (the sandbox raises ExpressionError; a runtime
    function may raise LookupError) becomes EvalFailure."""
    try:
        return expr.compiled.evaluate(env)
    except Exception as exc:  # noqa: BLE001 - a rule's error must never escape the core
        raise EvalFailure(where, expr.source, str(exc) or type(exc).__name__) from None


def evaluate_bool(expr: Expr, env: Mapping[str, Any], where: str) -> bool:
    value = evaluate(expr, env, where)
    if not isinstance(value, bool):
        raise EvalFailure(where, expr.source, f"expected true or false, got {type(value).__name__} {value!r}")
    return value


def render(template: Template, env: Mapping[str, Any], where: str) -> str:
    try:
        return template.compiled.render(env)
    except Exception as exc:  # noqa: BLE001
        raise EvalFailure(where, template.text, str(exc) or type(exc).__name__) from None


def evaluate_guard(guard: Guard, env: Mapping[str, Any], where: str, seen: list[dict[str, Any]]) -> bool:
    """all/any short-circuit; every expression evaluated is appended to `seen` with its value."""
    if guard.expr is not None:
        value = evaluate_bool(guard.expr, env, where)
        seen.append({"where": where, "expression": guard.expr.source, "value": value})
        return value
    if guard.kind == "not":
        return not evaluate_guard(guard.children[0], env, f"{where}.not", seen)
    decisive = guard.kind == "any"
    for n, child in enumerate(guard.children):
        if evaluate_guard(child, env, f"{where}.{guard.kind}[{n}]", seen) is decisive:
            return decisive
    return not decisive


def decimal_value(value: Any, where: str, source: str) -> Decimal:
    """A finite Decimal from an expression's or literal's value (floats via their repr)."""
    if isinstance(value, bool) or value is None:
        raise EvalFailure(where, source, f"expected a number, got {value!r}")
    try:
        if isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            result = Decimal(value)
        else:
            result = Decimal(str(value).strip())
    except (ArithmeticError, ValueError):
        raise EvalFailure(where, source, f"expected a number, got {value!r}") from None
    if not result.is_finite():
        raise EvalFailure(where, source, f"expected a finite number, got {value!r}")
    return result
