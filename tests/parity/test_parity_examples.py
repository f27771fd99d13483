"""Parity: every example rule test, run by `rules-engine test` and by the running service
against `rules-engine sim` with the same prices and signals, audits the same decisions,
intents, blocked-by reasons and order decision records, one for one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from parity_harness import comparable, offline_records, service_records, unsupported

from rules_engine.testing.spec import TestCase, load_test_file

RULES = Path(__file__).resolve().parents[2] / "rules"
CASES: list[TestCase] = [case for path in sorted(RULES.glob("*.test.yaml")) for case in load_test_file(path).tests]


def test_every_example_rule_file_has_tests_here() -> None:
    files = {Path(case.file).name for case in CASES}
    assert files == {p.name for p in RULES.glob("*.test.yaml")}
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[f"{Path(c.file).stem}:{c.line}" for c in CASES])
def test_service_audits_what_the_rule_test_audits(case: TestCase, tmp_path: Path) -> None:
    reason = unsupported(case)
    if reason is not None:
        pytest.skip(reason)
    offline, passed = offline_records(case, tmp_path / "offline")
    assert passed, f"the rule test itself fails: {case.name}"
    service = asyncio.run(asyncio.wait_for(service_records(case, tmp_path / "service"), 60))
    expected, got = comparable(offline), comparable(service)
    assert got == expected
