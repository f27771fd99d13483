"""Compiled expressions: parsed and checked once at load time, evaluated many times."""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from typing import Any

from .budget import check_file_load_budget
from .checker import check, condition_problem, constant_parts, parse
from .errors import ExpressionError
from .evaluator import evaluator
from .functions import BUILTIN_NAMES
from .source import SourceText


class Expression:
    """A checked expression. `names` are the free names it uses (sandbox functions
    included), e.g. `"price" in expr.names` tells whether a guard reads the price."""

    __slots__ = ("source", "names", "_text", "_body")

    source: str
    names: frozenset[str]

    def __init__(self, source: str, names: frozenset[str], text: SourceText, body: ast.expr) -> None:
        self.source = source
        self.names = names
        self._text = text
        self._body = body

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The expression's value with `env` supplying context values and runtime
        functions. Raises only ExpressionError (KeyboardInterrupt passes through)."""
        return evaluator().evaluate(self._body, self._text, env)

    def literal_arguments(self, function: str) -> list[str]:
        """The text constants passed first to each call of `function`
        (`price_of('ETHUSD') > 10` -> `["ETHUSD"]`); calls with a computed argument are skipped."""
        found = []
        for node in ast.walk(self._body):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.append(node.args[0].value)
        return found

    def condition_problem(self) -> tuple[str, int | None] | None:
        """Why this expression cannot work as a condition (`when`, `if`, `where`), with the
        column, or None: it gives no true or false, or `x == 'a' or 'b'` is always true."""
        return condition_problem(self._text, self._body)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str, allowed_names: Collection[str],
                       unavailable: Mapping[str, str] | None = None) -> Expression:
    """Parse and check `source` once. Every free name must be in `allowed_names` or
    BUILTIN_NAMES; a name in `unavailable` is reported with the reason given there. Parts
    that use no context name are evaluated here, so that `10**10**10` or `1/0` is a load
    error rather than a rule that never fires."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be text, not {type(source).__name__}")
    check_file_load_budget()
    text = SourceText(source)
    tree = parse(text)
    names = check(text, tree, frozenset(allowed_names) | BUILTIN_NAMES, unavailable)
    for part in constant_parts(tree):
        evaluator().evaluate(part, text, {})
    return Expression(source, names, text, tree.body)
