"""The YAML layer: read one rule file into plain data and an index of where each value was written.

Loading never surprises:
- Only data: mappings, sequences, strings, numbers, booleans and null. Any other tag
  (`!!python/object`, `!!binary`, `!custom`) is an error; nothing is ever constructed from a tag.
- Duplicate keys in one mapping are errors, `<<` included (keys merged in by `<<:` may be overridden,
  as YAML intends). Control characters (NUL, ...) are reported at their line and column.
- The file size, the nesting depth, the size after alias expansion and every number's digits and
  exponent (`rules_engine.core.number_limits`) are bounded. The expanded
  size is computed on the composed node graph with memoisation, so a "billion laughs" file is
  rejected without ever being expanded; recursive aliases are rejected too.
- Numbers: floats become `Decimal` from the written text (never via float); integers follow YAML 1.2
  (`012` is twelve); YAML 1.1 sexagesimal scalars (`5:1`) and timestamps stay strings.

`SourceDocument.nodes` maps a JSON path (`("rules", 0, "triggers", 1, "symbol")`) to the YAML node
written there, and `keys` maps it to the key node, so later layers can point at `file:line:column`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rules_engine.core.number_limits import integer_text_problem, number_problem
from rules_engine.rules.diagnostics import Diagnostic, Severity
from rules_engine.rules.yaml_errors import explain

MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64

JsonPath = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (_YAML + t for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _VALUE, _MERGE, _SEQ, _MAP = (_YAML + t for t in ("timestamp", "value", "merge", "seq", "map"))
_TRUE_WORDS = {"true", "yes", "on"}

if TYPE_CHECKING:  # the C loader has the Python one's interface; type-check against that
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# the characters YAML's reader refuses (PyYAML's Reader.NON_PRINTABLE)
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")
_SCALAR_TAGS: dict[tuple[str, tuple[bool, bool]], str] = {}
_SCALAR_TAGS_LIMIT = 50_000


class _Loader(_SafeLoader):
    """The safe loader, with implicit scalar tags memoised (they depend only on the text)."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _SCALAR_TAGS.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_SCALAR_TAGS) < _SCALAR_TAGS_LIMIT:
                _SCALAR_TAGS[key] = tag
        return tag


@dataclass
class SourceDocument:
    """One parsed rule file: its data and where every value came from."""

    file: str
    file_hash: str
    text: str
    data: Any
    nodes: dict[JsonPath, Node] = field(default_factory=dict)
    keys: dict[JsonPath, Node] = field(default_factory=dict)

    def rule_id_at(self, path: JsonPath) -> str | None:
        """The id of the rule that `path` lies in (None outside rules or when not a string)."""
        if len(path) >= 2 and path[0] == "rules" and isinstance(self.data, dict):
            rules = self.data.get("rules")
            if isinstance(rules, list) and isinstance(path[1], int) and path[1] < len(rules):
                rule = rules[path[1]]
                if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                    return rule["id"]
        return None

    def diagnostic(
        self,
        path: JsonPath,
        message: str,
        *,
        hint: str | None = None,
        code: str = "invalid",
        severity: Severity = "error",
        at_key: bool = False,
        offset: int | None = None,
    ) -> Diagnostic:
        """A diagnostic pinned to the value (or key, or a character of the string) at `path`."""
        if offset is not None:
            line, column = self.offset_position(path, offset)
        elif at_key:
            line, column = self.key_position(path)
        else:
            line, column = self.position(path)
        return Diagnostic(self.file, line, column, self.rule_id_at(path), message, hint, severity, code)

    def position(self, path: JsonPath) -> tuple[int, int]:
        """1-based (line, column) of the value at `path`, or of its nearest written parent."""
        for end in range(len(path), -1, -1):
            node = self.nodes.get(path[:end])
            if node is not None:
                return node.start_mark.line + 1, node.start_mark.column + 1
        return 1, 1

    def key_position(self, path: JsonPath) -> tuple[int, int]:
        """1-based (line, column) of the key that introduced `path` (falls back to the value)."""
        key = self.keys.get(path)
        if key is not None:
            return key.start_mark.line + 1, key.start_mark.column + 1
        return self.position(path)

    def offset_position(self, path: JsonPath, offset: int) -> tuple[int, int]:
        """1-based (line, column) of character `offset` (0-based) inside the string scalar at `path`."""
        node = self.nodes.get(path)
        if not isinstance(node, ScalarNode):
            return self.position(path)
        start, end = node.start_mark, node.end_mark
        quoted = node.style in ('"', "'")
        if start.line == end.line:
            return start.line + 1, start.column + 1 + offset + (1 if quoted else 0)
        if node.style == "|":
            value_lines = node.value.split("\n")
            index = node.value.count("\n", 0, offset)
            in_line = offset - (node.value.rfind("\n", 0, offset) + 1)
            file_lines = self.text.split("\n")
            file_index = start.line + 1 + index
            if file_index < len(file_lines) and index < len(value_lines):
                file_line, value_line = file_lines[file_index], value_lines[index]
                indent = (len(file_line) - len(file_line.lstrip(" "))) - (len(value_line) - len(value_line.lstrip(" ")))
                return file_index + 1, indent + in_line + 1
        return start.line + 1, start.column + 1 + (1 if quoted else 0)


class _Rejected(Exception):
    def __init__(self, node: Node, message: str, code: str):
        super().__init__(message)
        self.node, self.message, self.code = node, message, code


EMPTY_RULE_FILE = "the file is empty; a rule file holds `version:` and `rules:`"


def read_source(raw: bytes, file: str, empty: str = EMPTY_RULE_FILE) -> tuple[SourceDocument | None, list[Diagnostic]]:
    """Parse one rule file (or another file in the same YAML subset, whose kind `empty` explains
    when it holds nothing). Returns the document (None when unusable) and every problem found."""

    def fail(message: str, code: str, line: int = 1, column: int = 1,
             hint: str | None = None) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(file, line, column, None, message, hint, code=code)]

    if len(raw) > MAX_FILE_BYTES:
        return fail(f"the file is {len(raw)} bytes; rule files are limited to {MAX_FILE_BYTES} bytes", "file-too-large")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw[: exc.start].count(b"\n") + 1
        column = len(raw[line_start : exc.start].decode("utf-8-sig", "replace")) + 1
        return fail(f"the file is not UTF-8 text (bad byte 0x{raw[exc.start]:02X} at offset {exc.start})", "not-utf8",
                    line, column, hint="save it as UTF-8; an editor set to Latin-1 or Windows-1252 writes such bytes")
    control = _NON_PRINTABLE.search(text)
    if control is not None:  # YAML refuses it too, but reports only an offset
        index = control.start()
        line, column = text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1
        return fail(f"the file holds the control character U+{ord(control.group()):04X}, which YAML does not allow "
                    "(rule files are text; was a binary file saved as .yaml?)", "control-character", line, column)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        message, line, column = explain(exc, text)
        diagnostic = Diagnostic(file, line, column, _rule_id_before(text, line), f"invalid YAML: {message}",
                                code="yaml-syntax")
        return None, [diagnostic]
    except yaml.YAMLError as exc:
        return fail(f"invalid YAML: {exc}", "yaml-syntax")
    except RecursionError:
        return fail("invalid YAML: nested too deeply", "yaml-too-deep")
    if root is None:
        return fail(empty, "empty-file")
    try:
        if "&" in text:  # only anchors make aliases: without one, the tree is exactly as written
            _measure(root)
        document = SourceDocument(file, hashlib.sha256(raw).hexdigest(), text, None)
        builder = _Builder(document)
        document.data = builder.convert(root, (), 0)
    except _Rejected as exc:
        mark = exc.node.start_mark
        return fail(exc.message, exc.code, mark.line + 1, mark.column + 1)
    return (None if builder.errors else document), builder.errors


def _measure(root: Node) -> None:
    """Reject recursive aliases, deep nesting and large alias expansion without expanding anything."""
    memo: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    active: set[int] = set()

    def visit(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        known = memo.get(key)
        if known is None:
            if key in active:
                raise _Rejected(node, "this alias refers to itself (a recursive alias); rule files must be trees",
                                "yaml-recursive-alias")
            if depth > MAX_DEPTH:
                raise _Rejected(node, f"values are nested more than {MAX_DEPTH} levels deep", "yaml-too-deep")
            active.add(key)
            if isinstance(node, SequenceNode):
                children = node.value
            elif isinstance(node, MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = []
            size, height = 1, 0
            for child in children:
                child_size, child_height = visit(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > MAX_EXPANDED_NODES:
                    raise _Rejected(
                        node,
                        f"aliases expand this file to more than {MAX_EXPANDED_NODES} values "
                        "(a 'billion laughs' file?); rule files are limited to keep loading safe",
                        "yaml-alias-bomb",
                    )
            active.discard(key)
            known = memo[key] = (size, height)
        if depth + known[1] > MAX_DEPTH:
            raise _Rejected(node, f"values are nested more than {MAX_DEPTH} levels deep", "yaml-too-deep")
        return known

    visit(root, 0)


class _Builder:
    """Turn a measured node tree into plain data, recording nodes by path and collecting errors."""

    def __init__(self, document: SourceDocument):
        self.document = document
        self.errors: list[Diagnostic] = []
        self.rule_id: str | None = None  # the id of the rule being converted, for error messages

    def error(self, node: Node, message: str, code: str) -> None:
        mark = node.start_mark
        self.errors.append(Diagnostic(self.document.file, mark.line + 1, mark.column + 1, self.rule_id, message,
                                      code=code))

    def convert(self, node: Node, path: JsonPath, depth: int) -> Any:
        if len(path) == 2 and path[0] == "rules" and isinstance(node, MappingNode):
            outer, self.rule_id = self.rule_id, _written_id(node)
            try:
                return self._convert(node, path, depth)
            finally:
                self.rule_id = outer
        return self._convert(node, path, depth)

    def _convert(self, node: Node, path: JsonPath, depth: int) -> Any:
        self.document.nodes[path] = node
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if depth >= MAX_DEPTH:
            raise _Rejected(node, f"values are nested more than {MAX_DEPTH} levels deep", "yaml-too-deep")
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.reject_tag(node)
            return [self.convert(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        if not isinstance(node, MappingNode):  # yaml.compose makes only scalar, sequence and mapping nodes
            raise TypeError(f"unexpected YAML node {type(node).__name__}")
        if node.tag != _MAP:
            self.reject_tag(node)
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self.entries(node).items():
            self.document.keys[path + (key,)] = key_node
            result[key] = self.convert(value_node, path + (key,), depth + 1)
        return result

    def entries(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """The mapping's entries with merge keys applied; explicit keys win over merged ones."""
        explicit: dict[str, tuple[Node, Node]] = {}
        merged: dict[str, tuple[Node, Node]] = {}
        merge_key: Node | None = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                if merge_key is not None:  # the second would silently replace the first in other YAML readers
                    first = merge_key.start_mark.line + 1
                    self.error(key_node, f'duplicate key "<<" (first written on line {first}); merge several '
                               "mappings with one key: <<: [*a, *b]", "yaml-duplicate-key")
                    continue
                merge_key = key_node
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, MappingNode):
                        for key, entry in self.entries(source).items():
                            merged.setdefault(key, entry)
                    else:
                        self.error(source, "`<<:` merges a mapping (or a list of mappings)", "yaml-merge")
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, "keys must be plain names, not lists or mappings", "yaml-complex-key")
                continue
            if key_node.tag not in (_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP, _VALUE):
                self.reject_tag(key_node)
                continue
            key = key_node.value
            if key in explicit:
                first = explicit[key][0].start_mark.line + 1
                self.error(key_node, f'duplicate key "{key}" (first written on line {first})', "yaml-duplicate-key")
                continue
            explicit[key] = (key_node, value_node)
        for key, entry in merged.items():
            explicit.setdefault(key, entry)
        return explicit

    def reject_tag(self, node: Node) -> None:
        self.error(
            node,
            f'the tag "{_short_tag(node.tag)}" is not allowed; rule files hold plain data only '
            "(mappings, lists, strings, numbers, booleans, null)",
            "yaml-tag",
        )

    def scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag in (_STR, _TIMESTAMP, _VALUE):
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() in _TRUE_WORDS
        if tag == _INT:
            problem = integer_text_problem(text.replace("_", ""))
            if problem is not None:
                self.error(node, f"this number is too large: {problem}", "yaml-number")
                return None
            return _integer(text)
        if tag == _FLOAT:
            number = _decimal(text)
            if isinstance(number, Decimal) and not number.is_finite():
                self.error(node, f'"{text}" is not a finite number', "yaml-number")
                return None
            problem = number_problem(number) if isinstance(number, Decimal) else None
            if problem is not None:
                self.error(node, f"this number is too large: {problem}", "yaml-number")
                return None
            return number
        self.reject_tag(node)
        return None


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


def _written_id(rule: MappingNode) -> str | None:
    for key_node, value_node in rule.value:
        if isinstance(key_node, ScalarNode) and key_node.value == "id" and isinstance(value_node, ScalarNode):
            return value_node.value
    return None


def _rule_id_before(text: str, line: int) -> str | None:
    """Best effort for syntax errors (no tree to ask): the last `id:` written before `line` under `rules:`."""
    lines = text.split("\n")[:line]
    for candidate in reversed(lines):
        match = _ID_LINE.match(candidate)
        if match:
            return match.group(1)
        if candidate.startswith("rules:"):
            return None
    return None


_ID_LINE = re.compile(r"^\s*(?:-\s+)?id:\s*[\"']?([A-Za-z0-9][A-Za-z0-9_.:-]*)")


def _integer(text: str) -> int | str:
    """YAML 1.2 integers; a YAML 1.1 sexagesimal (`5:1`) stays the string it reads as."""
    cleaned = text.replace("_", "")
    if ":" in cleaned:
        return text
    sign = -1 if cleaned.startswith("-") else 1
    digits = cleaned.lstrip("+-")
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if digits.lower().startswith(prefix):
            return sign * int(digits[2:], base)
    return sign * int(digits, 10)


def _decimal(text: str) -> Decimal | str:
    cleaned = text.replace("_", "")
    if ":" in cleaned:
        return text
    lowered = cleaned.lower()
    if lowered.lstrip("+-") in (".inf", ".nan"):
        return Decimal("NaN") if "nan" in lowered else Decimal(lowered.replace(".inf", "Infinity"))
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return text
