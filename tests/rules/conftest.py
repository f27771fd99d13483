"""Helpers for rule-language tests: write real rule files to disk and load them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from rules_engine.rules import LoadResult, load_rules


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write("name.yaml", text) -> the path of a file holding the dedented text."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture
def load(write: Callable[..., Path]) -> Callable[..., LoadResult]:
    """load(text, name="rules.yaml") -> LoadResult of that text written to a real file."""

    def _load(text: str, name: str = "rules.yaml") -> LoadResult:
        return load_rules([write(name, text)])

    return _load
