"""`rules-engine validate PATH...`: check rule files (or folders of them) without running anything.

Exit codes: 0 all valid, 1 anything invalid (or, with `--strict`, any warning whose code
`--allow-warning` does not name), 2 usage error
(a path that does not exist, no rule files found, an unreadable `--pairs` snapshot, a folder
named by `RULES_ENGINE_SIGNAL_SCHEMAS` that is not one).
`--format github` prints GitHub Actions annotations (`::error file=...,line=...,col=...::...`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rules_engine.pairs import PairRegistry, default_registry
from rules_engine.rules import Diagnostic, LoadResult, find_rule_files, load_rules
from rules_engine.rules.signals import SCHEMAS_ENV, signal_schema_folders


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check rule files for errors and warnings",
        description="Check rule files (or folders of them) against the rule language, Kraken's pair list "
                    "and the expression sandbox. No network is used.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="rule files or folders (searched for *.yaml, *.yml)")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    parser.add_argument("--allow-warning", action="append", default=[], metavar="CODE",
                        help="with --strict, warnings with this code (e.g. not-rehearsable) are shown but do not "
                             "fail; may be repeated")
    parser.add_argument("--pairs", metavar="FILE", type=Path,
                        help="an AssetPairs JSON snapshot to check pairs against (default: the one shipped)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        files = find_rule_files(args.paths)
    except FileNotFoundError as exc:
        print(f"rules-engine validate: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"rules-engine validate: no rule files (*.yaml, *.yml) under {' '.join(args.paths)}", file=sys.stderr)
        return 2
    missing = [str(folder) for folder in signal_schema_folders()[:-1] if not folder.is_dir()]
    if missing:
        print(f"rules-engine validate: {SCHEMAS_ENV} names {', '.join(missing)}, not a folder "
              "(it holds your signal payload schemas, <source>.schema.json)", file=sys.stderr)
        return 2
    try:
        registry = PairRegistry.from_file(args.pairs).check() if args.pairs else default_registry()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        print(f"rules-engine validate: cannot read the pair snapshot {args.pairs}: {exc}", file=sys.stderr)
        return 2
    result = load_rules(args.paths, registry)  # the folders as given: links leaving them are refused
    allowed = set(args.allow_warning)
    failing = [w for w in result.warnings if w.code not in allowed]
    failed = bool(result.errors) or (args.strict and bool(failing))
    note = _failing_codes(failing) if args.strict and failing else None
    {"text": _print_text, "json": _print_json, "github": _print_github}[args.format](result, failed, note)
    return 1 if failed else 0


def _failing_codes(failing: list[Diagnostic]) -> str:
    codes = Counter(w.code for w in failing)
    return ("failing warnings by code: " + ", ".join(f"{code} ({n})" for code, n in sorted(codes.items()))
            + "; --allow-warning CODE lets --strict pass one that you accept")


def _summary(result: LoadResult) -> str:
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return (
        f"{count(len(result.files), 'file')}, {count(result.rule_count, 'rule')}: "
        f"{count(len(result.errors), 'error')}, {count(len(result.warnings), 'warning')}"
    )


def _print_text(result: LoadResult, failed: bool, note: str | None) -> None:
    for diagnostic in result.errors:
        print(diagnostic)
    if result.warnings:
        if result.errors:
            print()
        for diagnostic in result.warnings:
            print(diagnostic)
    if note:
        print(note)
    print(("invalid: " if failed else "valid: ") + _summary(result))


def _print_json(result: LoadResult, failed: bool, note: str | None) -> None:
    document = {
        "valid": not failed,
        "files": result.files,
        "rules": result.rule_count,
        "errors": [d.to_dict() for d in result.errors],
        "warnings": [d.to_dict() for d in result.warnings],
    }
    print(json.dumps(document, indent=2))


def _print_github(result: LoadResult, failed: bool, note: str | None) -> None:
    for diagnostic in result.errors + result.warnings:
        print(github_annotation(diagnostic))
    if note:
        print(note)
    print(("invalid: " if failed else "valid: ") + _summary(result))


def github_annotation(diagnostic: Diagnostic) -> str:
    """A GitHub Actions workflow command: `::error file=F,line=L,col=C,title=T::message`."""
    properties = {
        "file": diagnostic.file,
        "line": str(diagnostic.line),
        "col": str(diagnostic.column),
        "title": f"rules-engine {diagnostic.code}",
    }
    rendered = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items())
    return f"::{diagnostic.severity} {rendered}::{_escape_data(diagnostic.text())}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
