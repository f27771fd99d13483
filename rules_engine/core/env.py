"""The names an expression can use, and evaluation that never raises out of the core.

The core sets these names in every expression's environment:

- `trigger` (the type of the trigger that fired), `rule_id`, `now` (the event's time);
- functions backed by the core's view (no I/O): `balance(asset) -> Decimal`,
  `price_of(symbol) -> Decimal`, `open_orders(pair=None) -> int`.

Each trigger type adds the names it provides (`TriggerSpec.provides`); the names of the other
trigger types in the loaded rules are None (a rule fired by its timer trigger has `price` None).
The table of which type provides which name is the registry's (`rules_engine.registry`).

A function that reads a value the core has not seen yet (a balance never reported, a symbol
with no price) raises `StateNotReady`, which the sandbox passes through unchanged; evaluation
turns it into an `EvalFailure` whose `not_ready` says what was missing, so a guard can wait for
the value instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from rules_engine.core.model import Expr, Guard, Template
from rules_engine.core.number_limits import number_problem

RUNTIME_NAMES: tuple[str, ...] = ("trigger", "rule_id", "now")
FUNCTION_NAMES: tuple[str, ...] = ("balance", "price_of", "open_orders")
CORE_NAMES: frozenset[str] = frozenset(RUNTIME_NAMES + FUNCTION_NAMES)
"""The names every expression may use, whatever its rule's triggers."""


class StateNotReady(LookupError):
    """A runtime function needs a value the core has not seen yet: `kind` (`balance`, `price`)
    of `key` (an asset, a symbol). `passes_through` tells the sandbox to let it out as is."""

    passes_through: ClassVar[bool] = True

    def __init__(self, kind: str, key: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.key = key

    @property
    def what(self) -> str:
        """What is missing, in words: `balance of ZUSD`."""
        return f"{self.kind} of {self.key}"


class EvalFailure(Exception):
    """An expression or template failed; `where` names the place in the rule."""

    def __init__(self, where: str, source: str, reason: str, not_ready: StateNotReady | None = None,
                 at: str | None = None):
        super().__init__(f"{where}: {source!r}: {reason}")
        self.where = where
        self.source = source
        self.reason = reason
        self.not_ready = not_ready
        self.at = at  # file:line:column of the expression, when known

    def detail(self) -> dict[str, str]:
        """Where and what, for a trace record that carries `reason` separately."""
        detail = {"where": self.where, "expression": self.source}
        if self.at is not None:
            detail["at"] = self.at
        return detail


def build_env(context: Mapping[str, Any], rule_id: str, now: float, functions: Mapping[str, Callable],
              blank: Mapping[str, None]) -> dict[str, Any]:
    """An expression's environment: `blank` (every context name of the loaded trigger types, as
    None), then the firing's context, the rule id, the time and the runtime functions."""
    env: dict[str, Any] = dict(blank)
    env.update(context)
    env["rule_id"] = rule_id
    env["now"] = now
    env.update(functions)
    return env


def evaluate(expr: Expr, env: Mapping[str, Any], where: str) -> Any:
    """The expression's value; any failure (the sandbox raises ExpressionError; a runtime
    function StateNotReady) becomes EvalFailure."""
    try:
        return expr.compiled.evaluate(env)
    except StateNotReady as exc:
        raise EvalFailure(where, expr.source, str(exc), not_ready=exc) from None
    except Exception as exc:  # noqa: BLE001 - a rule's error must never escape the core
        at = str(expr.where) if expr.where is not None else None
        raise EvalFailure(where, expr.source, str(exc) or type(exc).__name__, at=at) from None


def evaluate_bool(expr: Expr, env: Mapping[str, Any], where: str) -> bool:
    value = evaluate(expr, env, where)
    if not isinstance(value, bool):
        raise EvalFailure(where, expr.source, f"expected true or false, got {type(value).__name__} {_shown(value)}")
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


def decimal_value(value: Any, where: str, source: str, at: str | None = None) -> Decimal:
    """A finite Decimal from an expression's or literal's value (floats via their repr), of
    bounded size; `at` is where the expression is written."""
    try:
        return _decimal_value(value, where, source)
    except EvalFailure as failure:
        failure.at = at
        raise


def _decimal_value(value: Any, where: str, source: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise EvalFailure(where, source, f"expected a number, got {_shown(value)}")
    try:
        if isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            result = Decimal(value)
        else:
            result = Decimal(str(value).strip())
    except (ArithmeticError, ValueError):
        raise EvalFailure(where, source, f"expected a number, got {_shown(value)}") from None
    if not result.is_finite():
        raise EvalFailure(where, source, f"expected a finite number, got {_shown(value)}")
    problem = number_problem(result)  # text from a signal ("qty": "1.111...") is bounded here
    if problem is not None:
        raise EvalFailure(where, source, f"expected a number within the limits: {problem}")
    return result


def _shown(value: Any) -> str:
    """A value for an error message: its repr, cut to 80 characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python prints
        return f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:79] + "…"
