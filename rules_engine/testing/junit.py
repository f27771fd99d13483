"""JUnit XML for CI systems (GitHub Actions reporters, GitLab, Jenkins): one `testsuite` per
test file, one `testcase` per test; a failed test carries a `failure` with the diff, an
invalid test file one `testcase` with an `error` listing its problems."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rules_engine.testing.suite import FileResult, case_details, summary_counts


def junit_xml(results: Sequence[FileResult]) -> str:
    counts = summary_counts(results)
    root = ET.Element("testsuites", {
        "name": "rules-engine test",
        "tests": str(counts["tests"] + counts["errors"]),
        "failures": str(counts["failed"]),
        "errors": str(counts["errors"]),
        "time": f"{sum(f.seconds for f in results):.3f}",
    })
    for file in results:
        suite = ET.SubElement(root, "testsuite", {
            "name": file.path,
            "tests": str(len(file.cases) + (1 if file.errors else 0)),
            "failures": str(sum(1 for c in file.cases if not c.passed)),
            "errors": "1" if file.errors else "0",
            "time": f"{file.seconds:.3f}",
        })
        classname = _classname(file.path)
        if file.errors:
            case = ET.SubElement(suite, "testcase", {"classname": classname, "name": "load test file",
                                                     "file": file.path, "time": "0"})
            error = ET.SubElement(case, "error", {"message": f"invalid test file: {file.errors[0]}",
                                                  "type": "InvalidTestFile"})
            error.text = "\n".join(str(d) for d in file.errors)
        for result in file.cases:
            case = ET.SubElement(suite, "testcase", {
                "classname": classname, "name": result.case.name, "file": result.case.file,
                "line": str(result.case.line), "time": f"{result.seconds:.3f}",
            })
            if not result.passed:
                count = len(result.problems) + (1 if result.error else 0)
                failure = ET.SubElement(case, "failure", {
                    "message": f"{count} expectation{'s' if count != 1 else ''} not met",
                    "type": "ExpectationFailed",
                })
                failure.text = "\n".join(case_details(result))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(results: Sequence[FileResult], path: Path | str) -> None:
    Path(path).write_text(junit_xml(results), encoding="utf-8")


def _classname(path: str) -> str:
    """`rules/btc.test.yaml` -> `rules.btc` (dots group files by folder in CI viewers)."""
    stem = path
    for suffix in (".test.yaml", ".test.yml", ".yaml", ".yml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem.replace("/", ".").strip(".")
