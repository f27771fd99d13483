"""The evaluator: asteval's Interpreter driven over a pre-checked tree.

asteval supplies the node handlers for literals, boolean operators, unary operators and
conditional expressions. The sandbox replaces the parts that decide safety and error
reporting: the dispatcher (`run`) reaches only the whitelisted node types and turns any
failure into an ExpressionError located at the innermost failing node; sandbox names are
resolved at load time (BuiltinName) and every other name is looked up in the evaluation's
own environment; calls, attribute access, subscripts, binary operators and comparisons go
through bounded code. asteval's own symbol table, error list and import machinery are
never used.
"""

from __future__ import annotations

import ast
import decimal
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from asteval import Interpreter

from . import budget, operators
from .checker import BuiltinName
from .errors import EvaluationFault, ExpressionError, describe, passes_through, shorten
from .limits import MAX_NUMBER_EXPONENT

if TYPE_CHECKING:
    from .source import SourceText

_MISSING = object()

# Decimal arithmetic runs in this context whatever the calling thread's context is, so
# results never depend on the caller and invalid operations always raise. A result beyond
# the exponent limit of numbers from outside is an overflow too, so no computed number can
# turn into a huge text where it is written out in plain notation.
DECIMAL_CONTEXT = decimal.Context(
    prec=28,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=MAX_NUMBER_EXPONENT,
    Emin=-MAX_NUMBER_EXPONENT,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


class Evaluator(Interpreter):
    """One per thread; each evaluation brings its own environment as the symbol table."""

    symtable: Mapping[str, Any]  # asteval's attribute (the package is untyped); here the evaluation's env

    def __init__(self) -> None:
        super().__init__(symtable={}, minimal=True, use_numpy=False)
        self._source: SourceText | None = None
        self._deadline = 0.0
        self._decimal_context = DECIMAL_CONTEXT.copy()
        self._dispatch = {
            ast.BoolOp: self.on_boolop,
            ast.BinOp: self.on_binop,
            ast.UnaryOp: self.on_unaryop,
            ast.Compare: self.on_compare,
            ast.IfExp: self.on_ifexp,
            ast.Call: self.on_call,
            ast.List: self.on_list,
            ast.Tuple: self.on_tuple,
            ast.Set: self.on_set,
            ast.Dict: self.on_dict,
            ast.Subscript: self.on_subscript,
            ast.Slice: self.on_slice,
            ast.Attribute: self.on_attribute,
        }

    def evaluate(self, node: ast.expr, source: SourceText, env: Mapping[str, Any]) -> Any:
        """Evaluate `node` with `env` as its names; re-entrant (the previous state is restored).
        The evaluation fails once it has run longer than `budget.EVALUATION_BUDGET`."""
        saved = self.symtable, self._source, decimal.getcontext(), self._deadline
        self.symtable, self._source = env, source
        self._deadline = budget.clock() + budget.EVALUATION_BUDGET
        decimal.setcontext(self._decimal_context)
        try:
            return self.run(node)
        except (ExpressionError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # run() raises only ExpressionError (or a passing one); a last guard
            if passes_through(exc):
                raise
            raise ExpressionError(f"evaluation failed: {describe(exc)}") from None
        finally:
            self.symtable, self._source, context, self._deadline = saved
            decimal.setcontext(context)

    def run(self, node: Any, expr: Any = None, lineno: Any = None, with_raise: bool = True) -> Any:
        """Evaluate one node; the signature is asteval's, the extra arguments are unused."""
        cls = node.__class__
        if cls is ast.Constant or cls is BuiltinName:  # the commonest nodes, and they cannot fail
            return node.value
        try:
            if cls is ast.Name:
                value = self.symtable.get(node.id, _MISSING)
                if value is _MISSING:
                    raise EvaluationFault(f"'{node.id}' has no value in this evaluation")
                return value
            return self._dispatch.get(cls, self._refuse)(node)
        except (ExpressionError, KeyboardInterrupt):
            raise
        except EvaluationFault as fault:
            raise self._located(node, fault.detail) from None
        except BaseException as exc:
            if passes_through(exc):
                raise
            raise self._located(node, describe(exc)) from None

    def _refuse(self, node: ast.AST) -> None:
        raise EvaluationFault(f"{type(node).__name__} is not allowed")

    def _located(self, node: ast.AST, detail: str) -> ExpressionError:
        source = self._source
        if source is None:
            return ExpressionError(detail)
        return ExpressionError(f"{detail} in `{source.snippet(node)}`", source.column(node))

    def _check_budget(self) -> None:
        if budget.clock() > self._deadline:
            raise EvaluationFault(f"evaluation took longer than its budget of {budget.EVALUATION_BUDGET:g} s")

    def on_binop(self, node: ast.BinOp) -> Any:
        result = operators.BINARY[node.op.__class__](self.run(node.left), self.run(node.right))
        self._check_budget()
        return result

    def on_compare(self, node: ast.Compare) -> Any:
        left = self.run(node.left)
        if len(node.ops) == 1:
            return operators.COMPARE[node.ops[0].__class__](left, self.run(node.comparators[0]))
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.run(comparator)
            if not operators.COMPARE[op.__class__](left, right):
                return False
            left = right
        return True

    def on_slice(self, node: ast.Slice) -> slice:
        lower, upper, step = (None if part is None else self.run(part) for part in (node.lower, node.upper, node.step))
        return slice(lower, upper, step)

    def on_subscript(self, node: ast.Subscript) -> Any:
        container = self.run(node.value)
        key = self.run(node.slice)
        if isinstance(container, Mapping):
            try:
                return container[key]
            except KeyError:
                raise EvaluationFault(f"no key {shorten(repr(key), 40)}") from None
        if isinstance(container, (str, Sequence)):
            try:
                return container[key]
            except IndexError:
                raise EvaluationFault(f"index {shorten(repr(key), 40)} out of range") from None
        raise EvaluationFault(f"cannot index a {type(container).__name__}")

    def on_attribute(self, node: ast.Attribute) -> Any:
        container = self.run(node.value)
        if not isinstance(container, Mapping):
            raise EvaluationFault(
                f"'.{node.attr}' reads a field of a mapping such as signal; "
                f"a {type(container).__name__} has no fields"
            )
        try:
            return container[node.attr]
        except KeyError:
            raise EvaluationFault(f"no field '{node.attr}'") from None

    def on_call(self, node: ast.Call) -> Any:
        callee = node.func
        if not isinstance(callee, ast.Name):  # the checker admits only named callees
            raise EvaluationFault("only named functions can be called")
        name = callee.id
        function = self.run(callee)
        if not callable(function):
            raise EvaluationFault(f"'{name}' is not a function")
        args = [self.run(arg) for arg in node.args]
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:  # the checker refuses ** unpacking
                raise EvaluationFault("unpacking with ** is not allowed")
            kwargs[keyword.arg] = self.run(keyword.value)
        try:
            result = function(*args, **kwargs)
        except (EvaluationFault, KeyboardInterrupt):
            raise
        except BaseException as exc:  # SystemExit from a runtime function must not stop the engine
            if passes_through(exc):
                raise
            raise EvaluationFault(f"{name}() failed: {describe(exc)}") from None
        self._check_budget()
        return result


_local = threading.local()


def evaluator() -> Evaluator:
    """This thread's evaluator."""
    instance = getattr(_local, "evaluator", None)
    if instance is None:
        instance = _local.evaluator = Evaluator()
    return instance
