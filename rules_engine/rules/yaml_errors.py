"""Plain words for YAML syntax errors, at the `line:column` where the author must look.

PyYAML (and libyaml) describe the parser's state: "while scanning for the next token found
character that cannot start any token". `explain` turns the common cases into what to change:
a tab used for indentation, a quoted string never closed, a `: ` inside an unquoted value, a line
indented differently from its neighbours, an unclosed `[` or `{`, a value starting with `@` or
a backtick, an alias to an unknown anchor. Anything else keeps PyYAML's words.
"""

from __future__ import annotations

import re

import yaml

_ANCHOR_NAME = re.compile(r"[^\s,\[\]{}]+")


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[str, int, int]:
    """The message (without the `invalid YAML: ` prefix) and the 1-based line and column."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    context, problem = exc.context or "", exc.problem or ""
    lines = text.split("\n")
    at = lines[line - 1] if 0 < line <= len(lines) else ""
    char = at[column - 1] if 0 < column <= len(at) else ""
    opened = exc.context_mark
    where = f"{opened.line + 1}:{opened.column + 1}" if opened else ""

    tab = _tab_in_indentation(lines, line)
    if tab is not None and ("token" in problem or "tab" in problem or "indentation" in problem):
        return ("a tab is used for indentation; YAML indents with spaces only (replace the tab with spaces)",
                tab[0], tab[1])
    if "cannot start any token" in problem and char:
        shown = "a backtick" if char == "`" else f'"{char}"'
        return f"{shown} cannot start an unquoted value; put the value in quotes", line, column
    if "quoted scalar" in context and "end of stream" in problem and opened:
        quote = _char(lines, opened.line + 1, opened.column + 1) or '"'
        return (f"the quoted string that starts here is never closed (its closing {quote} is missing)",
                opened.line + 1, opened.column + 1)
    if "mapping values are not allowed" in problem:
        return ('unexpected ": " here: quote a value that holds ": ", and line a key up with the keys '
                "above it"), line, column
    if "block collection" in context and "'-' indicator" in problem:
        return (f'this line is not lined up with the list above it (which starts at {where}): indent it like '
                'that list\'s items, or start a new item with "- "'), line, column
    if "block mapping" in context and "expected key" in problem:
        return (f"expected a key here, lined up with the keys of the mapping that starts at {where} "
                "(or text follows a closing quote on this line)"), line, column
    for kind, closing, what in (("flow sequence", "]", "["), ("flow mapping", "}", "{")):
        if kind in context and where:
            return (f'the "{what}" that opens at {where} is missing a "," between entries or its closing '
                    f'"{closing}"'), line, column
    if "scanning an alias" in context and opened:
        return ('a value that starts with "*" is read as a YAML alias (a reference to an &anchor): put the value '
                'in quotes, as in cron: "*/5 * * * *"'), opened.line + 1, opened.column + 1
    if "undefined alias" in problem:
        name = _name(at, column)
        return f'"*{name}" refers to an anchor "&{name}" that is not defined before it', line, column
    if "duplicate anchor" in context and where:
        return f'the anchor "&{_name(at, column)}" is defined twice (first at {where})', line, column
    if "expected a single document" in context or "expected '<document start>'" in problem:
        return 'a file holds one YAML document: remove the "---" and what follows, or put it in its own file', \
            line, column
    return " ".join(part for part in (context, problem) if part) or "invalid YAML", line, column


def _tab_in_indentation(lines: list[str], line: int) -> tuple[int, int] | None:
    """(line, column) of a tab in the leading whitespace of `line` (1-based), if there is one."""
    if not 0 < line <= len(lines):
        return None
    text = lines[line - 1]
    indentation = text[: len(text) - len(text.lstrip(" \t"))]
    index = indentation.find("\t")
    return None if index < 0 else (line, index + 1)


def _char(lines: list[str], line: int, column: int) -> str:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return text[column - 1] if 0 < column <= len(text) else ""


def _name(text: str, column: int) -> str:
    """The anchor or alias name written at `column` (after its `&` or `*`)."""
    match = _ANCHOR_NAME.match(text, column)
    return match.group(0) if match else ""
