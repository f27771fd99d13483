"""Checks across rules and files, and warnings about rules that are valid but probably wrong.

Errors:
- `duplicate-id`: a rule id used twice, in one file or across files (state follows the id).

Warnings (fail validation only under `--strict`):
- `no-cooldown`: a rule that places orders with neither `cooldown` nor `max_fires`.
- each trigger and action type's own (`TriggerType.warnings`, `ActionType.warnings`), such as
  the price trigger's `contradicted-level` and place_order's `below-ordermin`; `guard_bounds`
  helps a type read the literal comparisons a guard requires.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from rules_engine.core.model import Guard, Rule, SourceRef
from rules_engine.pairs import PairRegistry
from rules_engine.registry import action_types, trigger_types
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.yaml_source import SourceDocument

PRICE_NAME = "price"
PRICE_NAMES = frozenset({PRICE_NAME, "last", "bid", "ask", "mid"})


@dataclass(frozen=True)
class WrittenId:
    """A rule id as written in a file, with where."""

    rule_id: str
    file: str
    line: int
    column: int


def written_ids(document: SourceDocument) -> list[WrittenId]:
    """Every string rule id in the document (valid rules or not), in file order."""
    found = []
    rules = document.data.get("rules") if isinstance(document.data, dict) else None
    for index, raw in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            line, column = document.position(("rules", index, "id"))
            found.append(WrittenId(raw["id"], document.file, line, column))
    return found


def duplicate_ids(ids: Iterable[WrittenId]) -> list[Diagnostic]:
    """Every rule id written more than once, reported at each repeat."""
    first: dict[str, WrittenId] = {}
    found = []
    for written in ids:
        earlier = first.setdefault(written.rule_id, written)
        if earlier is not written:
            found.append(
                Diagnostic(
                    written.file, written.line, written.column, written.rule_id,
                    f'duplicate rule id "{written.rule_id}"',
                    hint=f"first defined at {earlier.file}:{earlier.line}:{earlier.column}", code="duplicate-id",
                )
            )
    return found


def rule_warnings(rule: Rule, registry: PairRegistry) -> list[Diagnostic]:
    """Warnings about one built rule."""
    warnings = []
    places_orders = any(a.places_orders for a in rule.actions)
    if places_orders and not rule.cooldown and rule.max_fires is None:
        warnings.append(
            warning(rule, rule.source, "places orders but has no cooldown or max_fires, so it may fire on every event",
                    "add e.g. `cooldown: 5m`", "no-cooldown")
        )
    triggers, actions = trigger_types(), action_types()
    for index, trigger in enumerate(rule.triggers):
        check = triggers[trigger.type].warnings
        if check is not None:
            warnings.extend(check(rule, index, trigger, registry))
    for index, action in enumerate(rule.actions):
        check = actions[action.type].warnings
        if check is not None:
            warnings.extend(check(rule, index, action, registry))
    return warnings


def warning(rule: Rule, where: SourceRef | None, message: str, hint: str | None, code: str) -> Diagnostic:
    """A warning about `rule`, at `where` (the rule's file start when unknown)."""
    line, column = (where.line, where.column) if where else (1, 1)
    file = where.file if where else "<unknown>"
    return Diagnostic(file, line, column, rule.id, message, hint, "warning", code)


def guard_bounds(guard: Guard) -> Iterator[tuple[tuple[SourceRef | None, str], tuple[str, str, Decimal]]]:
    """(`(where, source)`, `(name, op, limit)`) for every literal comparison of a price name that
    must hold for the guard to hold (in its top-level `all:` and `and`)."""
    if guard.kind == "all":
        for child in guard.children:
            yield from guard_bounds(child)
        return
    if guard.kind != "expr" or guard.expr is None:
        return
    try:
        tree = ast.parse(guard.expr.source.strip(), mode="eval").body
    except SyntaxError:
        return
    conjuncts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    for node in conjuncts:
        for bound in _compare_bounds(node):
            yield (guard.expr.where, guard.expr.source), bound


_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "=="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _compare_bounds(node: ast.AST) -> Iterator[tuple[str, str, Decimal]]:
    if not isinstance(node, ast.Compare):
        return
    operands = [node.left, *node.comparators]
    for (left, right), op in zip(pairwise(operands), node.ops, strict=True):  # `a < b < c`: a < b, b < c
        symbol = _OPS.get(type(op))
        if symbol is None:
            continue
        left_price, right_price = _price_name(left), _price_name(right)
        left_number, right_number = _number(left), _number(right)
        if left_price is not None and right_number is not None:
            yield left_price, symbol, right_number
        elif right_price is not None and left_number is not None:
            yield right_price, _FLIP[symbol], left_number


def _price_name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) and node.id in PRICE_NAMES else None


def _number(node: ast.AST) -> Decimal | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    return None
