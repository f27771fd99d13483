"""Run rule test files and describe the results for people (text) and CI (JUnit, see junit.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.pairs import PairRegistry
from rules_engine.paper.errors import ExchangeError
from rules_engine.replay.describe import end_text, fill_text, iso, offset, outcome_text
from rules_engine.replay.outcomes import Outcome
from rules_engine.replay.runner import OfflineRunner
from rules_engine.rules import Diagnostic
from rules_engine.testing.matching import Mismatch, check
from rules_engine.testing.spec import TestCase, WalletChange, load_test_file


@dataclass
class CaseResult:
    case: TestCase
    problems: list[Mismatch] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None  # the test could not run as written (an open order was refused)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems and self.error is None


@dataclass
class FileResult:
    path: str
    errors: list[Diagnostic] = field(default_factory=list)  # the file is invalid: nothing ran
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.passed for c in self.cases)


def run_case(case: TestCase, state_dir: Path | str | None = None) -> CaseResult:
    """Run one test through the engine's loop (`OfflineRunner`) and compare the outcome with
    its expectations. `state_dir` keeps the run's state store and audit log."""
    started = time.perf_counter()
    result = CaseResult(case)
    with OfflineRunner(case.ruleset, start=case.start, wallet=case.wallet, limits=case.limits,
                       timers=case.timers, state_dir=state_dir, futures_wallet=case.futures_wallet) as runner:
        for number, request in enumerate(case.open_orders, start=1):
            try:
                runner.place_order(request)
            except ExchangeError as exc:
                result.error = (f"open order {number} ({request.side} {request.volume} {request.pair}) "
                                f"was refused: {exc.error}")
                result.seconds = time.perf_counter() - started
                return result
        for item in case.inputs:
            if isinstance(item, WalletChange):
                runner.set_balances(item.balances, item.time)
            else:
                runner.feed(item)
        runner.finish(case.until)
        result.outcomes = runner.outcomes
        result.problems = check(case, runner.outcomes, runner.balances(), len(runner.open_orders()),
                                runner.exchange.assets.resolve)
    result.seconds = time.perf_counter() - started
    return result


def run_file(path: Path | str, registry: PairRegistry | None = None) -> FileResult:
    started = time.perf_counter()
    loaded = load_test_file(path, registry)
    result = FileResult(loaded.path, loaded.errors, [run_case(case) for case in loaded.tests])
    result.seconds = time.perf_counter() - started
    return result


def run_files(paths: Sequence[Path | str], registry: PairRegistry | None = None) -> list[FileResult]:
    return [run_file(path, registry) for path in paths]


# ----------------------------------------------------------------------------- text


def render_text(results: Sequence[FileResult], verbose: bool = False) -> str:
    """The human report: PASS/FAIL per test, each failure as expected-versus-got with times."""
    lines: list[str] = []
    for file in results:
        lines.append(file.path)
        for diagnostic in file.errors:
            lines.append(f"  ERROR {diagnostic}")
        for case in file.cases:
            status = "PASS" if case.passed else "FAIL"
            lines.append(f"  {status}  {case.case.name}  ({case.case.file}:{case.case.line}, {case.seconds:.3f}s)")
            if not case.passed or verbose:
                lines.extend("    " + line for line in case_details(case))
    counts = summary_counts(results)
    lines.append("")
    lines.append(f"{_count(counts['tests'], 'test')}: {counts['passed']} passed, {counts['failed']} failed, "
                 f"{_count(counts['errors'], 'invalid file')} (of {_count(len(results), 'file')})")
    return "\n".join(lines)


def case_details(case: CaseResult) -> list[str]:
    """The failure diff of one test, then the timeline of what happened."""
    lines: list[str] = []
    start = case.case.start
    if case.error:
        lines.append(f"error: {case.error}")
    for problem in case.problems:
        where = f"{case.case.file}:{problem.line}: " if problem.line else ""
        subject = problem.rule or "wallet"
        lines.append(f"{where}{subject}" if problem.line else f"unexpected: {subject}")
        expected = problem.expected.split("\n")
        lines.append(f"  expected: {expected[0]}")
        lines.extend("            " + extra for extra in expected[1:])
        for n, got in enumerate(problem.got):
            lines.append(("       got: " if n == 0 else "            ") + got)
    if case.outcomes:
        lines.append(f"what happened (start {iso(start)}):")
        for outcome in case.outcomes:
            lines.append(f"  {offset(outcome.time, start):>8}  {outcome.rule_id}  {outcome_text(outcome)}")
            lines.extend(f"  {offset(fill.time, start):>8}    filled {fill_text(fill)}" for fill in outcome.fills)
            lines.extend(f"  {offset(end.time, start):>8}    {end_text(end)}" for end in outcome.ended)
    elif not case.error:
        lines.append(f"what happened (start {iso(start)}): nothing fired and nothing was blocked")
    return lines


def summary_counts(results: Sequence[FileResult]) -> dict[str, int]:
    cases = [c for f in results for c in f.cases]
    return {
        "tests": len(cases),
        "passed": sum(1 for c in cases if c.passed),
        "failed": sum(1 for c in cases if not c.passed),
        "errors": sum(1 for f in results if f.errors),
    }


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
