"""Expression source text: positions of parsed nodes as 1-based offsets in the source
the user wrote, and short snippets of it for messages."""

from __future__ import annotations

import ast
import re

from .errors import shorten

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SourceText:
    """The text handed to the parser (`text`) and where it starts in the original source."""

    def __init__(self, original: str) -> None:
        self.original = original
        self.text = original.strip()
        self.base = len(original) - len(original.lstrip())
        self._lines = _LINE_BREAK.split(self.text)
        self._starts: list[int] = [0]
        for match in _LINE_BREAK.finditer(self.text):
            self._starts.append(match.end())

    def _clamp(self, offset: int) -> int:
        return min(max(offset, 0), len(self.original)) + 1

    def column_of_chars(self, lineno: int, char_offset: int) -> int:
        """1-based column in the original of a 1-based line and 0-based character offset."""
        line_index = min(max(lineno, 1), len(self._starts)) - 1
        return self._clamp(self.base + self._starts[line_index] + char_offset)

    def column(self, node: ast.AST) -> int | None:
        """1-based column in the original source where `node` starts."""
        lineno = getattr(node, "lineno", None)  # only some node classes carry positions
        col_offset = getattr(node, "col_offset", None)
        if lineno is None or col_offset is None:
            return None
        line_index = min(max(lineno, 1), len(self._lines)) - 1
        encoded = self._lines[line_index].encode("utf-8")
        chars = len(encoded[:col_offset].decode("utf-8", "ignore"))  # col_offset counts bytes
        return self.column_of_chars(lineno, chars)

    def segment(self, node: ast.AST) -> str | None:
        """The exact source text of `node`."""
        return ast.get_source_segment(self.text, node)

    def snippet(self, node: ast.AST) -> str:
        """A one-line, shortened source text of `node` for messages."""
        text = self.segment(node) or type(node).__name__
        return shorten(" ".join(text.split()))
