"""Rule unit tests: YAML test files run through the offline loop (`rules-engine test`).

    from rules_engine.testing import run_files, render_text, junit_xml
    results = run_files(["rules/btc-breakout.test.yaml"])
    print(render_text(results))
    ok = all(r.passed for r in results)

See docs/rule-tests-and-replay.md for the file format.
"""

from rules_engine.testing.junit import junit_xml, write_junit
from rules_engine.testing.spec import TestCase, TestFile, find_test_files, load_test_file
from rules_engine.testing.suite import CaseResult, FileResult, render_text, run_case, run_file, run_files

__all__ = [
    "CaseResult",
    "FileResult",
    "TestCase",
    "TestFile",
    "find_test_files",
    "junit_xml",
    "load_test_file",
    "render_text",
    "run_case",
    "run_file",
    "run_files",
    "write_junit",
]
