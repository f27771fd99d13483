"""Parse a signal's JSON body within fixed limits, before and while parsing.

- The body must be UTF-8. Nesting depth and the number of values are counted by a linear scan
  of the text before the JSON parser runs, so a body nested 900 deep never reaches a recursive
  parser (nor, later, the audit log's serializer); the parsed payload's depth is checked again.
- Every number is checked as the parser meets it: at most `MAX_NUMBER_DIGITS` significant
  digits and an exponent within ±`MAX_NUMBER_EXPONENT` (`rules_engine.core.number_limits`), so a
  20 000-digit number never becomes a value a rule computes with.
- Numbers with a fraction or exponent are Decimals; duplicate keys, NaN, Infinity and the
  state codec's reserved key are refused.

Each refusal is a `BodyProblem` whose reason names the limit (and, for a number, the field),
never a value of the body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules_engine.core.number_limits import integer_text_problem, number_problem
from rules_engine.jsoncodec import DECIMAL_TAG

MAX_DEPTH = 32
"""Nesting of objects and lists in one signal body."""

MAX_VALUES = 10_000
"""Values (object members and list items) in one signal body."""

MAX_REASON_LENGTH = 300

# a string (possibly unterminated: it then runs to the end), a bracket, or a comma
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|$)|[\[\]{},]', re.DOTALL)


@dataclass(frozen=True)
class BodyProblem:
    """Why a body was refused: HTTP status, code, reason."""

    status: int
    code: str
    reason: str


class _Oversize:
    """What the parser returns for a number beyond the limits, found by `_checked`."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


_NOT_JSON = ('body is not JSON: a signal is a JSON object such as {"action": "buy"}; a TradingView alert '
             "sends its message as it is written, so write the whole message as JSON")


def parse_body(raw_body: bytes) -> dict[str, Any] | BodyProblem:
    """The body as a JSON object, or the problem with it."""
    try:
        text = raw_body.decode("utf-8-sig")  # JSON between systems is UTF-8 (RFC 8259)
    except UnicodeDecodeError as exc:
        return BodyProblem(400, "invalid_json", f"body is not UTF-8 text (bad byte at offset {exc.start})")
    start = text.lstrip()[:1]
    if start not in ("{", "["):
        return BodyProblem(400, "invalid_json", _NOT_JSON if start else "body is empty: a signal is a JSON object")
    problem = _structure_problem(text)
    if problem is not None:
        return problem
    try:
        value = json.loads(
            text,
            parse_float=_parse_decimal,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except RecursionError:  # not reached after the depth scan; a last guard
        return BodyProblem(422, "too_deep", f"the body is nested too deeply (limit {MAX_DEPTH} levels)")
    except ValueError as exc:
        return BodyProblem(400, "invalid_json", clip(f"body is not valid JSON: {exc}"))
    if not isinstance(value, dict):
        return BodyProblem(400, "not_an_object", f"body must be a JSON object, not {type(value).__name__}")
    return _checked(value)


def _structure_problem(text: str) -> BodyProblem | None:
    depth = values = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            values += 1
            if depth > MAX_DEPTH:
                return BodyProblem(422, "too_deep", f"the body is nested more than {MAX_DEPTH} levels deep "
                                   f"(limit {MAX_DEPTH})")
        elif token in ("]", "}"):
            depth -= 1
        elif token == ",":
            values += 1
        if values > MAX_VALUES:
            return BodyProblem(422, "too_many_values", f"the body holds more than {MAX_VALUES} values "
                               f"(limit {MAX_VALUES})")
    return None


def _parse_decimal(text: str) -> Decimal | _Oversize:
    value = Decimal(text)  # linear in the text; the body is bounded
    problem = number_problem(value)
    return value if problem is None else _Oversize(problem)


def _parse_int(text: str) -> int | _Oversize:
    problem = integer_text_problem(text)
    return int(text) if problem is None else _Oversize(problem)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with unique keys; the key the state codec reserves is refused, as a signal's
    payload is saved with the engine's state (`rules_engine.jsoncodec`)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        if key == DECIMAL_TAG:
            raise ValueError(f"the key {DECIMAL_TAG!r} is reserved")
        result[key] = value
    return result


def _checked(payload: dict[str, Any]) -> dict[str, Any] | BodyProblem:
    """The payload, or the first number beyond the limits (with its path). Walks without
    recursion and checks the depth again: the byte scan is the first line, this the last."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(payload, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Oversize):
            field = "/".join(map(str, path)) or "(payload)"
            return BodyProblem(422, "number_too_large", clip(f"{field}: {value.problem}"))
        if isinstance(value, (dict, list)):
            if len(path) >= MAX_DEPTH:
                return BodyProblem(422, "too_deep", f"the body is nested more than {MAX_DEPTH} levels deep "
                                   f"(limit {MAX_DEPTH})")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend(reversed([(child, (*path, key)) for key, child in items]))
    return payload


def clip(text: str) -> str:
    """`text` cut to MAX_REASON_LENGTH characters."""
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 3] + "..."
