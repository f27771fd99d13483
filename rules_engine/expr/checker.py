"""Load-time checks of an expression: size limits, then parsing, then a whitelist of
syntax, then names. Nothing here evaluates user code."""

from __future__ import annotations

import ast
import builtins
import difflib
import inspect
import io
import math
import re
import tokenize
from collections.abc import Iterator, Mapping
from decimal import Decimal

from rules_engine.core.env import FUNCTION_NAMES
from rules_engine.core.number_limits import number_problem

from . import operators
from .errors import ExpressionError
from .functions import BUILTINS, CONSTANTS, FUNCTIONS
from .limits import MAX_DEPTH, MAX_INT_BITS, MAX_NESTING, MAX_NODES, MAX_SOURCE_LENGTH
from .source import SourceText

_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda functions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed (a log or notify message is a template: {name})",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Starred: "unpacking with * is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}

_ALLOWED: tuple[type[ast.AST], ...] = (
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.Subscript,
    ast.Slice,
    ast.Attribute,
)

_STATEMENTS: dict[type[ast.AST], str] = {
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.Assign: "assignment",
    ast.AugAssign: "assignment",
    ast.AnnAssign: "assignment",
    ast.Raise: "raise",
    ast.FunctionDef: "a function definition",
    ast.AsyncFunctionDef: "a function definition",
    ast.ClassDef: "a class definition",
    ast.For: "a loop",
    ast.AsyncFor: "a loop",
    ast.While: "a loop",
    ast.If: "an if statement (write `a if condition else b`)",
    ast.With: "with",
    ast.AsyncWith: "with",
    ast.Try: "try",
    ast.Delete: "del",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Assert: "assert",
    ast.Return: "return",
    ast.Pass: "pass",
}



def parse(source: SourceText) -> ast.Expression:
    """Parse one expression after the size limits, raising ExpressionError with a column."""
    if len(source.original) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression too long: {len(source.original)} characters (limit {MAX_SOURCE_LENGTH})"
        )
    if not source.text:
        raise ExpressionError("empty expression")
    _check_nesting(source)
    try:
        tree = ast.parse(source.text, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(source, exc) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"cannot parse expression: {type(exc).__name__}") from None
    _check_size(source, tree)
    return tree


def _check_nesting(source: SourceText) -> None:
    """Reject bracket nesting beyond MAX_NESTING before the parser recurses into it."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source.text).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
                if depth > MAX_NESTING:
                    column = source.column_of_chars(*token.start)
                    raise ExpressionError(f"brackets nested too deeply (limit {MAX_NESTING})", column)
            elif token.string in ")]}":
                depth -= 1
    except (tokenize.TokenError, SyntaxError):
        pass  # the parser reports malformed text with a better message


def _syntax_error(source: SourceText, exc: SyntaxError) -> ExpressionError:
    column = None
    if exc.lineno is not None and exc.offset is not None:
        column = source.column_of_chars(exc.lineno, exc.offset - 1)
    try:
        statements = ast.parse(source.text, mode="exec").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        statements = []
    if len(statements) > 1:
        return ExpressionError("only one expression is allowed", source.column(statements[1]))
    if statements and not isinstance(statements[0], ast.Expr):
        kind = _STATEMENTS.get(type(statements[0]), "a statement")
        message = f"{kind} is not allowed: a rule expression is a single expression"
        if isinstance(statements[0], ast.Assign):
            message += " (to compare, write ==)"
        return ExpressionError(message, column)
    brackets = any(words in exc.msg for words in ("never closed", "unmatched", "does not match", "unterminated"))
    slip = None if brackets else _percent_slip(source) or _operator_slip(source)
    if slip is not None:
        return ExpressionError(f"syntax error: {slip[0]}", slip[1])
    message = f"syntax error: {exc.msg}"
    if "\n" in source.text.strip() and not source.text.startswith("("):
        message += " (an expression spanning several lines must be wrapped in parentheses)"
    if "leading zeros" in exc.msg:  # Python's words suggest an octal prefix
        message = "syntax error: a whole number cannot start with 0 (write 50, not 050)"
        if _SPLIT_NUMBER.search(source.text):
            message += f"; {COMMA_HINT}"
    return ExpressionError(message, column)


# Operators from other languages and spreadsheets, and an expression cut short: (pattern, what to write).
_SLIPS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"=>"), "'=>' is not an operator: write >="),
    (re.compile(r"=<"), "'=<' is not an operator: write <="),
    (re.compile(r"<>"), "'<>' is not an operator: write !="),
    (re.compile(r"([<>=!]) +="), "write {0}= without a space"),
    (re.compile(r"&&"), "write and, not &&"),
    (re.compile(r"\|\|"), "write or, not ||"),
    (re.compile(r"!(?!=)"), "write not, not !"),
    (re.compile(r"\b(AND|OR|NOT|And|Or|Not)\b"), "write {0} in lower case"),
    (re.compile(r"(\band|\bor|\bnot|\bif|\belse|\bin|\*\*|//|<<|>>|[-+*/%<>=!]=?)\s*$"),
     "the expression stops after '{0}': something is missing after it"),
)
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


# A number written as a percent, `0.1%` in `ask - bid < 0.1% * price`: `%` followed by no operand.
_PERCENT = re.compile(r"(?<![\w.])([0-9][0-9_]*(?:\.[0-9]+)?|\.[0-9]+)\s*%(?!\s*[\w(.\[{~'\"+-])")


def _percent_slip(source: SourceText) -> tuple[str, int] | None:
    """What to write for a percent sign after a number, and the number's column."""
    text = _QUOTED.sub(lambda quoted: " " * len(quoted.group()), source.text)
    found = _PERCENT.search(text)
    if found is None:
        return None
    number = found.group(1)
    fraction = format((Decimal(number.replace("_", "")) / 100).normalize(), "f")
    index = found.start()
    line = text.count("\n", 0, index) + 1
    column = source.column_of_chars(line, index - (text.rfind("\n", 0, index) + 1))
    return (f"'{number}%' is not a percent: % is the remainder operator; write {fraction} ({number} / 100)",
            column)


def _operator_slip(source: SourceText) -> tuple[str, int] | None:
    """What to write instead, and its column, for a syntax error that an operator of another
    language or a missing last part explains (text in quotes is not looked at)."""
    text = _QUOTED.sub(lambda quoted: " " * len(quoted.group()), source.text)
    for pattern, advice in _SLIPS:
        found = pattern.search(text)
        if found is not None:
            index = found.start()
            line = text.count("\n", 0, index) + 1
            column = source.column_of_chars(line, index - (text.rfind("\n", 0, index) + 1))
            word = found.group(1) if pattern.groups else found.group()
            return advice.format(word.lower() if advice.endswith("lower case") else word), column
    return None


def _check_size(source: SourceText, tree: ast.Expression) -> None:
    """Count expression nodes and measure nesting depth without recursion."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count += 1
            if count > MAX_NODES:
                raise ExpressionError(f"expression too large (limit {MAX_NODES} parts)")
            if depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested too deeply (limit {MAX_DEPTH})", source.column(node))
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + isinstance(child, ast.expr)))


class BuiltinName(ast.Name):
    """A name of a sandbox function or constant, resolved at load time to `value`."""

    value: object


class _ResolveBuiltins(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id not in BUILTINS:
            return node
        resolved = BuiltinName(id=node.id, ctx=node.ctx)
        resolved.value = BUILTINS[node.id]
        return ast.copy_location(resolved, node)


def check(source: SourceText, tree: ast.Expression, allowed: frozenset[str],
          unavailable: Mapping[str, str] | None = None) -> frozenset[str]:
    """Check every node against the whitelist and every name against `allowed` (a name in
    `unavailable` is explained with its reason there: where it is provided); turn
    float literals into Decimals and sandbox names into BuiltinNames. Returns the names
    the expression uses. Of several problems the leftmost is reported (the outer one at
    equal columns)."""
    callees = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    problems: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for order, node in enumerate(ast.walk(tree.body)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        for message in _problems(source, node, allowed, unavailable or {}, callees):
            problems.append((source.column(node) or 0, order, message))
    if not problems:
        problems = [(column, 0, message) for column, message in _comma_problems(source, tree)]
    if problems:
        column, _, message = min(problems)
        raise ExpressionError(message, column or None)
    _ResolveBuiltins().visit(tree)
    return frozenset(names)


def _problems(source: SourceText, node: ast.AST, allowed: frozenset[str], unavailable: Mapping[str, str],
              callees: set[int]) -> Iterator[str]:
    if isinstance(node, ast.expr) and not isinstance(node, _ALLOWED):
        yield _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
    elif isinstance(node, ast.Name):
        yield from _name_problems(node.id, allowed, unavailable, is_callee=id(node) in callees)
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            yield f"names starting with '_' are not allowed: '.{node.attr}'"
    elif isinstance(node, ast.Call):
        yield from _call_problems(node)
    elif isinstance(node, ast.Constant):
        yield from _constant_problems(source, node)
    elif isinstance(node, ast.Dict) and any(key is None for key in node.keys):
        yield "unpacking with ** is not allowed"
    elif isinstance(node, ast.BinOp) and type(node.op) not in operators.BINARY:
        yield "operator @ is not supported"


def _name_problems(name: str, allowed: frozenset[str], unavailable: Mapping[str, str],
                   is_callee: bool) -> Iterator[str]:
    if name.startswith("_"):
        yield f"names starting with '_' are not allowed: '{name}'"
    elif name in FUNCTIONS:
        if not is_callee:
            yield f"'{name}' is a function: call it, as in {name}(...)"
    elif name in CONSTANTS or name in allowed:
        if is_callee and name not in FUNCTION_NAMES:
            yield f"'{name}' is not a function"
    else:
        message = unavailable_name(name, allowed, unavailable)
        if message == f"unknown name '{name}'":  # no other name was meant: perhaps text
            message += f" (text is written in quotes: '{name}')"
        yield message


def unavailable_name(name: str, allowed: frozenset[str], unavailable: Mapping[str, str]) -> str:
    """Why `name`, which is not in `allowed`, cannot be used (`unavailable` maps names that
    exist elsewhere to the reason)."""
    if name in unavailable:
        return f"'{name}' is not available here: {unavailable[name]}"
    if hasattr(builtins, name):
        return f"'{name}' is not available in rule expressions"
    message = f"unknown name '{name}'"
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message


def _call_problems(node: ast.Call) -> Iterator[str]:
    if not isinstance(node.func, ast.Name):
        yield "only named functions can be called, as in min(a, b); methods and computed callees are not allowed"
    for keyword in node.keywords:
        if keyword.arg is None:
            yield "unpacking with ** is not allowed"
        elif keyword.arg.startswith("_"):
            yield f"names starting with '_' are not allowed: '{keyword.arg}'"


# Written as in `price > 70,000` or `price * 0,99`: a comma a person meant as a thousands
# separator or a decimal mark, which Python reads as a tuple or as more arguments.
_SPLIT_NUMBER = re.compile(r"[0-9]\s*,\s*[0-9]")
COMMA_HINT = "a comma is not a thousands separator or a decimal mark: write 70000 (or 70_000) and 0.99"


def _comma_problems(source: SourceText, tree: ast.Expression) -> Iterator[tuple[int, str]]:
    """A comma that splits a number: a tuple as the whole expression (never a guard's true or false,
    nor an action's value), a `000` part, or a sandbox function given more arguments than it takes."""
    body = tree.body
    if isinstance(body, ast.Tuple) and len(body.elts) > 1:
        message = "several values separated by commas where one value is expected"
        if _SPLIT_NUMBER.search(source.segment(body) or ""):
            message += f"; {COMMA_HINT}"
        yield source.column(body.elts[1]) or 0, message
    for node in ast.walk(body):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value == 0:
            text = source.segment(node) or "0"
            if len(text) > 1 and text.isdigit():
                yield source.column(node) or 0, f"{text} is not a number on its own; {COMMA_HINT}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            problem = _arity_problem(node)
            if problem is not None:
                if _SPLIT_NUMBER.search(source.segment(node) or ""):
                    problem += f"; {COMMA_HINT}"
                yield source.column(node) or 0, problem


_NOT_TRUE_OR_FALSE: dict[type[ast.AST], str] = {
    ast.BinOp: "a number or a text", ast.List: "a list", ast.Dict: "a mapping", ast.Set: "a set",
}


def condition_problem(source: SourceText, body: ast.expr) -> tuple[str, int | None] | None:
    """Why `body`, used as a condition (`when`, `if`, `where`), cannot mean what it says: a value
    that is never true or false, or a text or number on its own beside `or` / `and`
    (`signal.action == 'buy' or 'long'`, where 'long' alone is always true)."""
    gives = _NOT_TRUE_OR_FALSE.get(type(body))
    if isinstance(body, ast.Constant) and not isinstance(body.value, bool) and body.value is not None:
        gives = "a text" if isinstance(body.value, str) else "a number"
    if gives is not None:
        return (f"a condition gives true or false, and this gives {gives}: compare it, as in price > 70000",
                source.column(body))
    for node in ast.walk(body):
        if not isinstance(node, ast.BoolOp):
            continue
        for before, value in zip(node.values, node.values[1:], strict=False):
            if isinstance(value, ast.Constant) and not isinstance(value.value, bool) and value.value is not None:
                shown = source.snippet(value)
                message = f"{shown} on its own is not a condition: compare it too"
                if (isinstance(before, ast.Compare) and len(before.ops) == 1 and isinstance(before.ops[0], ast.Eq)
                        and isinstance(node.op, ast.Or)):
                    left, right = source.snippet(before.left), source.snippet(before.comparators[0])
                    message += f", as in {left} in ({right}, {shown})"
                return message, source.column(value)
    return None


def _arity_problem(node: ast.Call) -> str | None:
    """Why the sandbox function `node` calls cannot take its arguments, if it cannot."""
    assert isinstance(node.func, ast.Name)
    function = FUNCTIONS.get(node.func.id)
    try:
        signature = inspect.signature(function) if function is not None else None
    except (TypeError, ValueError):  # a builtin type without a signature (bool)
        signature = None
    if signature is None or any(keyword.arg is None for keyword in node.keywords):
        return None
    try:
        signature.bind(*node.args, **{keyword.arg: keyword.value for keyword in node.keywords if keyword.arg})
    except TypeError as exc:
        return f"wrong arguments for {node.func.id}(): {exc}"
    return None


def _constant_problems(source: SourceText, node: ast.Constant) -> Iterator[str]:
    value = node.value
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            yield f"integer literal too large (limit {MAX_INT_BITS} bits)"
    elif isinstance(value, float):
        literal = _literal_decimal(source, node, value)
        problem = None if literal is None else number_problem(literal)
        if literal is None:
            yield "number literal out of range"
        elif problem is not None:
            yield f"number literal too large: {problem}"
        else:
            # The evaluator reads Constant.value itself (the tree is never compiled), so a Decimal
            # may stand there, though typeshed types the field as what compile() accepts.
            setattr(node, "value", literal)  # noqa: B010
    else:
        yield f"{type(value).__name__} literals are not allowed"


def _literal_decimal(source: SourceText, node: ast.Constant, value: float) -> Decimal | None:
    """The Decimal the float literal `node` (whose value is `value`) denotes, from its exact
    source text (`0.1` is 0.1)."""
    if not math.isfinite(value):
        return None
    return Decimal(source.segment(node) or repr(value))


def constant_parts(tree: ast.Expression) -> list[ast.expr]:
    """The largest parts of the expression that use no context or runtime name, other
    than plain literals: they can be evaluated at load time to find errors early."""
    found: list[ast.expr] = []

    def visit(node: ast.AST) -> bool:
        children = [visit(child) for child in ast.iter_child_nodes(node)]
        if isinstance(node, ast.Name):
            return node.id in FUNCTIONS or node.id in CONSTANTS
        pure = all(children)
        if not pure:
            found.extend(
                child
                for child, child_pure in zip(ast.iter_child_nodes(node), children, strict=True)
                if child_pure and isinstance(child, ast.expr) and not isinstance(child, (ast.Constant, ast.Name))
            )
        return pure

    if visit(tree.body) and not isinstance(tree.body, (ast.Constant, ast.Name)):
        found.append(tree.body)
    return found
