"""Check the `signal.<field>` names a rule reads against its signal sources' payload schemas.

A rule whose signal triggers all name sources with a payload schema (`schemas/signals/<source>.schema.json`,
the schema the webhook checks every payload against) can only ever see fields those schemas
describe. So a field they do not list is a typo: an error when the schemas forbid other fields
(`additionalProperties: false`: the value can never be there), else a warning (`--strict` fails
on it). A comparison with a value the field's `enum` (or `const`) rules out can never hold: a
warning. Both come with a "did you mean". Read in every expression of the rule as `signal.f`,
`signal['f']` and `'f' in signal`: a signal trigger's `where` against its own source's schema,
when it is built (so a typo there is reported in the same run as the rule's other errors), and
the rule's `when` and its actions' values, `if` and message templates, which may see a signal
from any of the rule's sources, against all of them once the rule is built.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

from rules_engine.core.model import Expr, Guard, Rule, SourceRef, Template
from rules_engine.rules.diagnostics import Diagnostic, Severity, did_you_mean
from rules_engine.rules.signals import load_signal_schema, signal_schema_names

SIGNAL = "signal"
ACCOUNT_FIELD = "account"
"""Not the provider's: the field fan-out adds to each account's copy of a signal (its store key
and sizing, `signal.account.scale`), so the payload schemas do not describe it."""
_PLACEHOLDER = re.compile(r"(?<!\{)\{\s*signal\s*(?:\.(\w+)|\[\s*['\"]([^'\"]*)['\"]\s*\])")


@dataclasses.dataclass(frozen=True)
class _Read:
    """A field read from the payload, where, and the literal values it is compared with."""

    name: str
    where: SourceRef | None
    compared: tuple[object, ...] = ()


def signal_field_diagnostics(rule: Rule, sources: list[str]) -> list[Diagnostic]:
    """Problems with the payload fields the guard and actions of `rule` read, for a rule whose
    signal triggers name `sources`."""
    reads = list(_reads(rule))
    return _check(rule.id, rule.source, reads, sources) if reads else []


def where_diagnostics(rule_id: str | None, where: Expr, source: str) -> list[Diagnostic]:
    """Problems with the payload fields a signal trigger's `where` reads, for its `source`."""
    return _check(rule_id, where.where, list(_expression_reads(where)), [source])


def _check(rule_id: str | None, fallback: SourceRef | None, reads: list[_Read],
           sources: list[str]) -> list[Diagnostic]:
    schemas = _schemas(sources)
    if schemas is None:
        return []
    properties: dict[str, list[dict[str, Any]]] = {}
    for schema in schemas:
        for name, body in (schema.get("properties") or {}).items():
            properties.setdefault(name, []).append(body if isinstance(body, dict) else {})
    closed = all(schema.get("additionalProperties") is False for schema in schemas)
    named = sorted(set(sources))
    described = " and ".join(f'"{source}"' for source in named)
    described += " payload schemas have" if len(named) > 1 else " payload schema has"
    found: list[Diagnostic] = []
    for read in reads:
        if read.name == ACCOUNT_FIELD:
            continue
        where = read.where or fallback
        if read.name not in properties:
            severity: Severity = "error" if closed else "warning"
            hint = did_you_mean(read.name, sorted(properties))
            message = f'the {described} no field "{read.name}"'
            message += " (it allows no other fields)" if closed else ""
            found.append(_diagnostic(rule_id, where, message, hint, severity, "unknown-signal-field"))
            continue
        allowed = _allowed_values(properties[read.name])
        for value in read.compared:
            if allowed is not None and value not in allowed:
                words = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in allowed)
                hint = did_you_mean(str(value), [str(v) for v in allowed])
                found.append(_diagnostic(rule_id, where, f"signal.{read.name} is never {value!r} "
                                         f"(the payload schema allows {words})", hint, "warning",
                                         "impossible-signal-value"))
    return found


def _schemas(sources: list[str]) -> list[dict[str, Any]] | None:
    """The payload schema of every source; None when any source has none (its payload is free)."""
    shipped = set(signal_schema_names())
    if not sources or any(source not in shipped for source in sources):
        return None
    try:
        return [load_signal_schema(source) for source in dict.fromkeys(sources)]
    except (LookupError, ValueError):
        return None


def _allowed_values(bodies: list[dict[str, Any]]) -> list[object] | None:
    """The values a field may take when every schema naming it restricts them, else None."""
    allowed: list[object] = []
    for body in bodies:
        if "const" in body:
            allowed.append(body["const"])
        elif isinstance(body.get("enum"), list):
            allowed.extend(body["enum"])
        else:
            return None
    return list(dict.fromkeys(allowed))


def _diagnostic(rule_id: str | None, where: SourceRef | None, message: str, hint: str | None, severity: Severity,
                code: str) -> Diagnostic:
    line, column = (where.line, where.column) if where else (1, 1)
    return Diagnostic(where.file if where else "<unknown>", line, column, rule_id, message, hint, severity, code)


def _reads(rule: Rule) -> Iterator[_Read]:
    """Every payload field the rule's guard and actions (expressions and templates) read."""
    for value, where in _expressions((rule.when, rule.actions), rule.source, 0):
        if isinstance(value, Expr):
            yield from _expression_reads(value)
        else:
            for match in _PLACEHOLDER.finditer(value.text):
                yield _Read(match.group(1) or match.group(2), where)


def _expressions(value: Any, where: SourceRef | None, depth: int) -> Iterator[tuple[Expr | Template, SourceRef | None]]:
    """The expressions and templates inside a rule's model objects, with the nearest position."""
    if depth > 12:
        return
    if isinstance(value, Expr):
        yield value, value.where or where
    elif isinstance(value, Template):
        yield value, where
    elif isinstance(value, Guard):
        if value.expr is not None:
            yield value.expr, value.expr.where or value.where or where
        for child in value.children:
            yield from _expressions(child, value.where or where, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        own = getattr(value, "where", None)
        here = own if isinstance(own, SourceRef) else where
        for item in dataclasses.fields(value):
            if item.name not in ("where", "source"):
                yield from _expressions(getattr(value, item.name), here, depth + 1)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _expressions(item, where, depth + 1)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _expressions(item, where, depth + 1)


def _expression_reads(expr: Expr) -> Iterator[_Read]:
    try:
        tree = ast.parse(expr.source.strip(), mode="eval")
    except SyntaxError:
        return
    compared: dict[int, list[object]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            _collect_comparisons(node, compared)
    for node in ast.walk(tree):
        name = _field_read(node)
        if name is not None:
            yield _Read(name, _at(expr, node), tuple(compared.get(id(node), ())))


def _field_read(node: ast.AST) -> str | None:
    """The field name `node` reads from the payload: `signal.f`, `signal['f']`, `'f' in signal`."""
    if isinstance(node, ast.Attribute) and _is_signal(node.value):
        return node.attr
    if isinstance(node, ast.Subscript) and _is_signal(node.value) and _text(node.slice) is not None:
        return _text(node.slice)
    if (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and _is_signal(node.comparators[0]) and _text(node.left) is not None):
        return _text(node.left)
    return None


def _collect_comparisons(node: ast.Compare, compared: dict[int, list[object]]) -> None:
    """For each payload field compared with `==`/`!=` or `in` a literal list, those literals."""
    operands = [node.left, *node.comparators]
    for index, op in enumerate(node.ops):
        left, right = operands[index], operands[index + 1]
        if isinstance(op, (ast.Eq, ast.NotEq)):
            for field_node, literal in ((left, right), (right, left)):
                if _field_read(field_node) is not None and isinstance(literal, ast.Constant):
                    compared.setdefault(id(field_node), []).append(literal.value)
        elif isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
            if _field_read(left) is not None:
                values = [item.value for item in right.elts if isinstance(item, ast.Constant)]
                compared.setdefault(id(left), []).extend(values)


def _is_signal(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == SIGNAL


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _at(expr: Expr, node: ast.AST) -> SourceRef | None:
    """Where `node` is written: its column within a one-line expression, else the expression's start."""
    where = expr.where
    if where is None or "\n" in expr.source.strip():
        return where
    offset = len(expr.source) - len(expr.source.lstrip())
    return dataclasses.replace(where, column=where.column + offset + getattr(node, "col_offset", 0))
