"""Message templates for `log` and `notify`: literal text with `{placeholder}`s.

A placeholder is a name, optionally followed by `.field` or `[key]` lookups into
mappings and lists, and optionally by `:.Nf` for N decimal places:
`"bought {volume} {symbol} at {price:.2f}, signal {signal.action} {signal[qty]}"`.
`{{` and `}}` stand for literal braces. Lookups are item lookups only (never attribute
access), the text is parsed here once, and values are rendered by this module: no
user text ever reaches `str.format`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from rules_engine.core.env import FUNCTION_NAMES

from .checker import unavailable_name
from .errors import ExpressionError, describe, shorten
from .evaluator import DECIMAL_CONTEXT
from .limits import MAX_PLACES, MAX_RENDERED_VALUE, MAX_TEMPLATE_LENGTH
from .operators import to_decimal

_PLACEHOLDER = re.compile(
    r"(?P<name>[A-Za-z_]\w*)(?P<path>(?:\.\w+|\[[^\[\]]*\])*)(?::(?P<spec>.*))?", re.ASCII | re.DOTALL
)
_SEGMENT = re.compile(r"\.(\w+)|\[([^\[\]]*)\]", re.ASCII)
_SPEC = re.compile(r"\.(\d{1,2})f")
_INTEGER = re.compile(r"-?\d+", re.ASCII)

# control characters and line separators are shown escaped, so a value cannot forge log lines
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(32), *range(127, 160)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


@dataclass(frozen=True)
class _Placeholder:
    column: int
    text: str
    name: str
    path: tuple[str, ...]
    places: int | None

    def render(self, env: Mapping[str, Any]) -> str:
        try:
            value = env[self.name]
        except KeyError:
            raise ExpressionError(f"no value for '{self.name}' in {self.text}", self.column) from None
        try:
            for key in self.path:
                value = _lookup(value, key)
            return shorten(_show(value, self.places), MAX_RENDERED_VALUE)
        except _RenderError as exc:
            raise ExpressionError(f"{exc} in {self.text}", self.column) from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise ExpressionError(f"{describe(exc)} in {self.text}", self.column) from None


class _RenderError(Exception):
    pass


class MessageTemplate:
    """A checked template; `names` are the names its placeholders start with."""

    __slots__ = ("text", "names", "_parts")

    text: str
    names: frozenset[str]

    def __init__(self, text: str, parts: tuple[str | _Placeholder, ...]) -> None:
        self.text = text
        self._parts = parts
        self.names = frozenset(part.name for part in parts if isinstance(part, _Placeholder))

    def render(self, env: Mapping[str, Any]) -> str:
        """The message with every placeholder replaced; raises only ExpressionError."""
        return "".join(part if isinstance(part, str) else part.render(env) for part in self._parts)

    def __repr__(self) -> str:
        return f"MessageTemplate({self.text!r})"


def compile_template(text: str, allowed_names: Collection[str],
                     unavailable: Mapping[str, str] | None = None) -> MessageTemplate:
    """Parse `text` once and check every placeholder's name against `allowed_names` (a name in
    `unavailable` is reported with the reason given there)."""
    if not isinstance(text, str):
        raise ExpressionError(f"a message must be text, not {type(text).__name__}")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise ExpressionError(f"message too long: {len(text)} characters (limit {MAX_TEMPLATE_LENGTH})")
    allowed = frozenset(allowed_names)
    parts: list[str | _Placeholder] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("{{", index) or text.startswith("}}", index):
            literal.append(char)
            index += 2
        elif char == "}":
            raise ExpressionError("single '}' (write '}}' for a literal brace)", index + 1)
        elif char == "{":
            end = text.find("}", index + 1)
            if end < 0 or "{" in text[index + 1 : end]:
                raise ExpressionError("'{' is never closed (write '{{' for a literal brace)", index + 1)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_placeholder(text[index : end + 1], index + 1, allowed, unavailable or {}))
            index = end + 1
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return MessageTemplate(text, tuple(parts))


def _placeholder(text: str, column: int, allowed: frozenset[str], unavailable: Mapping[str, str]) -> _Placeholder:
    inner = text[1:-1].strip()
    if not inner:
        raise ExpressionError("empty placeholder {}: write {name}", column)
    match = _PLACEHOLDER.fullmatch(inner)
    if match is None:
        raise ExpressionError(
            f"invalid placeholder {shorten(text, 40)}: write {{name}}, {{name.field}} or {{name[key]}}", column
        )
    name = match["name"]
    path = tuple(_path(match["path"], text, column))
    if name.startswith("_"):
        raise ExpressionError(f"names starting with '_' are not allowed: '{name}'", column)
    if name in FUNCTION_NAMES:
        raise ExpressionError(f"'{name}' is a function; a placeholder shows a value", column)
    if name not in allowed:
        raise ExpressionError(unavailable_name(name, allowed, unavailable), column)
    places = None
    if match["spec"] is not None:
        spec = _SPEC.fullmatch(match["spec"])
        if spec is None or int(spec[1]) > MAX_PLACES:
            raise ExpressionError(
                f"unsupported format ':{shorten(match['spec'], 20)}': only ':.Nf' with N from 0 to {MAX_PLACES}",
                column,
            )
        places = int(spec[1])
    return _Placeholder(column, text, name, path, places)


def _path(path: str, text: str, column: int) -> list[str]:
    keys = []
    for segment in _SEGMENT.finditer(path):
        field, key = segment[1], segment[2]
        if field is not None:
            if field.startswith("_"):
                raise ExpressionError(f"names starting with '_' are not allowed: '.{field}' in {text}", column)
            keys.append(field)
            continue
        key = key.strip()
        if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
            key = key[1:-1]
        if not key:
            raise ExpressionError(f"empty [] in {text}", column)
        keys.append(key)
    return keys


def _lookup(value: Any, key: str) -> Any:
    """Item lookup by a path key: mapping keys are text (or the integer the text spells),
    list positions are integers. Never an attribute."""
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        if _INTEGER.fullmatch(key) and int(key) in value:
            return value[int(key)]
        raise _RenderError(f"no key {shorten(repr(key), 40)}")
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not _INTEGER.fullmatch(key):
            raise _RenderError(f"a list position must be a number, not {shorten(repr(key), 40)}")
        try:
            return value[int(key)]
        except IndexError:
            raise _RenderError(f"position {key} out of range") from None
    raise _RenderError(f"cannot look up {shorten(repr(key), 40)} in a {type(value).__name__}")


def _show(value: Any, places: int | None) -> str:
    """The value as text (cut to MAX_RENDERED_VALUE by the caller, whatever its type)."""
    if callable(value):
        raise _RenderError("a function cannot be shown")
    if places is not None:
        return _fixed(value, places)
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, (Mapping, list, tuple)):
        text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(", ", ": "))
        return text.translate(_ESCAPES)
    return str(value).translate(_ESCAPES)


def _int_text(value: int) -> str:
    """An integer's digits, or its size when it has more than Python will print (4300 digits)."""
    try:
        return str(value)
    except ValueError:
        return f"<an integer of {value.bit_length()} bits>"


def _fixed(value: Any, places: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _RenderError(f"':.{places}f' formats numbers, not {type(value).__name__}")
    number = to_decimal(value) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        return str(number)
    with localcontext(DECIMAL_CONTEXT):
        return plain_decimal(number.quantize(Decimal(1).scaleb(-places)))


def _json_default(value: Any) -> str:
    return plain_decimal(value) if isinstance(value, Decimal) else shorten(str(value), MAX_RENDERED_VALUE)


def plain_decimal(value: Decimal) -> str:
    """A Decimal without exponent notation (`1E+2` -> `100`), unless it is very large or small."""
    sign, digits, exponent = value.as_tuple()
    if not value.is_finite() or not isinstance(exponent, int) or abs(exponent) > 40 or value.adjusted() > 40:
        return str(value)
    text = "".join(map(str, digits))
    if exponent >= 0:
        text += "0" * exponent
    else:
        point = len(text) + exponent
        text = "0." + "0" * -point + text if point <= 0 else text[:point] + "." + text[point:]
    return ("-" if sign else "") + text
