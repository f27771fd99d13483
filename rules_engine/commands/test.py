"""`rules-engine test TESTFILE...`: run rule unit tests (YAML test files).

Exit codes: 0 every test passed, or there are no test files (a note says so); 1 a test failed
or a test file (or a rule file it names) is invalid, or no test files were found with
`--require-tests`; 2 usage error (a path that does not exist, --junit unwritable). Folders are
searched for `*.test.yaml`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rules_engine.execution.base import keep_rule_output_in_reports
from rules_engine.testing import find_test_files, render_text, run_files, write_junit
from rules_engine.testing.suite import FileResult, summary_counts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run rule unit tests (*.test.yaml)",
        description="Run rule unit tests: feed the rules the inputs of each test (prices, signals, timer beats) "
                    "against a paper wallet and compare what fires with what the test expects. No network is used.",
    )
    parser.add_argument("paths", nargs="+", metavar="TESTFILE", help="test files, or folders searched for *.test.yaml")
    parser.add_argument("--junit", metavar="FILE", type=Path, help="also write the results as JUnit XML")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("--require-tests", action="store_true",
                        help="fail (exit 1) when the paths hold no test files; without it that is a note and exit 0")
    parser.add_argument("-v", "--verbose", action="store_true", help="show what happened in passing tests too")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    keep_rule_output_in_reports()
    try:
        files = find_test_files(args.paths)
    except FileNotFoundError as exc:
        print(f"rules-engine test: {exc}", file=sys.stderr)
        return 2
    if not files:
        where = " ".join(args.paths)
        if args.require_tests:
            print(f"rules-engine test: no test files (*.test.yaml) under {where}, and --require-tests asks for some",
                  file=sys.stderr)
            return 1
        print(f"rules-engine test: note: no test files (*.test.yaml) under {where}; nothing to run "
              "(--require-tests makes this an error)", file=sys.stderr)
    results = run_files(files)
    if args.format == "json":
        print(json.dumps(_as_json(results), indent=2))
    else:
        print(render_text(results, verbose=args.verbose))
    if args.junit is not None:
        try:
            write_junit(results, args.junit)
        except OSError as exc:
            print(f"rules-engine test: cannot write {args.junit}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0 if all(r.passed for r in results) else 1


def _as_json(results: list[FileResult]) -> dict[str, object]:
    return {
        "passed": all(r.passed for r in results),
        "counts": summary_counts(results),
        "files": [
            {
                "path": r.path,
                "errors": [d.to_dict() for d in r.errors],
                "tests": [
                    {
                        "name": c.case.name,
                        "line": c.case.line,
                        "passed": c.passed,
                        "error": c.error,
                        "problems": [{"line": p.line, "time": p.time, "expected": p.expected, "got": list(p.got)}
                                     for p in c.problems],
                    }
                    for c in r.cases
                ],
            }
            for r in results
        ],
    }
