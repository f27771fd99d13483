"""Checks across rules and files, and warnings about rules that are valid but probably wrong.

Errors:
- `duplicate-id`: a rule id used twice, in one file or across files (state follows the id).

Warnings (fail validation only under `--strict`):
- `no-cooldown`: a rule that places orders with neither `cooldown` nor `max_fires`.
- `contradicted-level`: a price crossing its own guard rules out, detected from literal
  comparisons on `price` (or the trigger's field: `last`, `bid`, `ask`, `mid`) in the guard's top-level conjunction (`crosses_above: 70000` with
  `when: price < 65000` can never fire).
- `below-ordermin`: a literal order volume below Kraken's minimum for the pair.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from rules_engine.core.model import FuturesSendOrder, Guard, PlaceOrder, PriceTrigger, Rule, SourceRef
from rules_engine.pairs import PairRegistry
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
    places_orders = any(isinstance(a, (PlaceOrder, FuturesSendOrder)) for a in rule.actions)
    if places_orders and not rule.cooldown and rule.max_fires is None:
        warnings.append(
            _warning(rule, rule.source, "places orders but has no cooldown or max_fires, so it may fire on every event",
                     "add e.g. `cooldown: 5m`", "no-cooldown")
        )
    if rule.when is not None:
        warnings.extend(_contradicted_levels(rule))
    for action in rule.actions:
        if isinstance(action, PlaceOrder) and isinstance(action.volume, Decimal) and action.volume > 0:
            pair = registry.get(action.pair)
            if pair is not None and action.volume < pair.ordermin:
                warnings.append(
                    _warning(rule, action.where, f"volume {action.volume} is below Kraken's minimum order of {pair.ordermin} for {pair.altname}",
                             None, "below-ordermin")
                )
    return warnings


def _warning(rule: Rule, where: SourceRef | None, message: str, hint: str | None, code: str) -> Diagnostic:
    line, column = (where.line, where.column) if where else (1, 1)
    file = where.file if where else "<unknown>"
    return Diagnostic(file, line, column, rule.id, message, hint, "warning", code)


def _contradicted_levels(rule: Rule) -> Iterator[Diagnostic]:
    bounds = list(_price_bounds(rule.when))
    for number, trigger in enumerate(rule.triggers, start=1):
        if not isinstance(trigger, PriceTrigger):
            continue
        for (where, text), (name, op, limit) in bounds:
            if name in (PRICE_NAME, trigger.field) and _excludes(trigger, op, limit):
                verb = "crosses above" if trigger.direction == "above" else "crosses below"
                yield _warning(
                    rule, where,
                    f'the guard "{text}" can never hold when trigger {number} fires (it {verb} {trigger.level})',
                    None, "contradicted-level",
                )


def _excludes(trigger: PriceTrigger, op: str, limit: Decimal) -> bool:
    """Whether `price <op> limit` is impossible at the moment `trigger` fires."""
    level = trigger.level
    if trigger.direction == "above":  # price >= level when it fires
        return (op == "<" and limit <= level) or (op in ("<=", "==") and limit < level)
    return (op == ">" and limit >= level) or (op in (">=", "==") and limit > level)  # price <= level


def _price_bounds(guard: Guard) -> Iterator[tuple[tuple[SourceRef | None, str], tuple[str, str, Decimal]]]:
    """(`(where, source)`, `(name, op, limit)`) for every literal comparison of a price name that must hold."""
    if guard.kind == "all":
        for child in guard.children:
            yield from _price_bounds(child)
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
    for left, op, right in zip(operands, node.ops, operands[1:]):
        symbol = _OPS.get(type(op))
        if symbol is None:
            continue
        if _is_price(left) and _number(right) is not None:
            yield left.id, symbol, _number(right)
        elif _is_price(right) and _number(left) is not None:
            yield right.id, _FLIP[symbol], _number(left)


def _is_price(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in PRICE_NAMES


def _number(node: ast.AST) -> Decimal | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Decimal(str(node.value))
    return None
