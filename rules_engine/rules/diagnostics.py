"""Diagnostics: one error or warning about a rule file, pinned to `file:line:column`.

Every layer of the loader (YAML, schema, model builder, semantic checks) reports through
`Diagnostic`, so the command line, the engine and tests print them the same way:

    rules/btc.yaml:12:7: rule "btc-dip-buy": unknown trigger type "pricee" (did you mean "price"?)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a rule file. `line` and `column` are 1-based."""

    file: str
    line: int
    column: int
    rule_id: str | None
    message: str
    hint: str | None = None
    severity: Severity = "error"
    code: str = "invalid"

    def __str__(self) -> str:
        severity = " warning:" if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}:{severity} {self.text()}"

    def text(self) -> str:
        """The diagnostic without its location: `rule "x": what is wrong (hint)`."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return f'rule "{self.rule_id}": {text}' if self.rule_id else text

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule_id": self.rule_id,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def did_you_mean(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """A 'did you mean "x"?' hint naming the closest candidate, or None."""
    pool = list(candidates)
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        matches = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)]
    return f'did you mean "{matches[0]}"?' if matches else None
