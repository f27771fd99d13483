"""`rules-engine audit verify|show|new-segment|export`: check and read the audit log; after
damage, start a new chain segment that records the break. `--store URL --key KEY` reads a
PostgreSQL store's chain instead (`commands.audit_store`), `export` writes it as a JSONL log.

PATH is the log file or a state directory; by default the state directory's
`audit.jsonl` (`--state-dir`, else $RULES_ENGINE_STATE_DIR, else ./state).

Exit codes: 0 ok; 1 the log was altered or truncated (verify), or has damaged lines
(show); 2 usage error or no log.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from rules_engine.audit import (
    AuditError,
    AuditLog,
    format_record,
    parse_anchor,
    parse_time,
    show,
    start_new_segment,
    verify,
)
from rules_engine.commands.audit_store import add_store_arguments, register_export, with_store
from rules_engine.state.paths import AUDIT_FILE, add_state_dir_argument, audit_log_path, resolve_state_dir


def _time_arg(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _anchor_arg(text: str) -> str:
    try:
        parse_anchor(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="verify or show the audit log",
        description="Verify the hash chain of the audit log, or show its records.",
    )
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)

    check = actions.add_parser(
        "verify",
        help="check every record, the chain and the head file",
        description="Check the audit log: each record's hash, the chain of prev hashes, the seq "
        "numbers, the head file, and --expect-head. Exit 0 intact, 1 altered or truncated, 2 usage.",
    )
    check.add_argument("path", nargs="?", metavar="PATH", help="audit log file or state directory")
    add_state_dir_argument(check)
    check.add_argument(
        "--expect-head",
        metavar="[SEQ:]HASH",
        type=_anchor_arg,
        help="a head noted earlier (printed by a previous verify); the log must still contain it",
    )
    check.add_argument(
        "--repair",
        action="store_true",
        help="if the only fault is a torn final line, remove it and record a torn_tail record",
    )
    check.add_argument("--strict", action="store_true", help="treat a torn final line as a failure (exit 1)")
    add_store_arguments(check)
    check.set_defaults(func=with_store(_verify))

    segment = actions.add_parser(
        "new-segment",
        help="after damage: keep the damaged log aside and start a new chain that records the break",
        description="For a damaged audit log only (verify exits 1): move it and its head file aside "
        "unchanged (audit.jsonl.damaged-<UTC time>) and begin a new log whose first record, chain_break, "
        "names that file, its SHA-256, the first problem and the last good record. The engine then starts. "
        "The same as `rules-engine run --accept-damaged-audit`. Exit 0 done, 1 the log is intact or in use, 2 usage.",
    )
    segment.add_argument("path", nargs="?", metavar="PATH", help="audit log file or state directory")
    add_state_dir_argument(segment)
    segment.set_defaults(func=_new_segment)

    read = actions.add_parser(
        "show",
        help="print records, filtered by rule, kind and time",
        description="Print audit records. Times: epoch seconds, ISO 8601 (no zone = UTC) or a duration ago "
                    "(2h, 30m, 1d; with a minus, write --since=-2h).",
    )
    read.add_argument("path", nargs="?", metavar="PATH", help="audit log file or state directory")
    add_state_dir_argument(read)
    read.add_argument("--rule", metavar="ID", help="rule id, or a shell pattern such as 'btc-*'")
    read.add_argument(
        "--kind",
        metavar="K",
        action="append",
        help="record kind (trigger, guard, decision, risk, request, response, ...); repeat or comma-separate",
    )
    read.add_argument("--since", metavar="TIME", type=_time_arg, help="records at or after TIME")
    read.add_argument("--until", metavar="TIME", type=_time_arg, help="records before TIME")
    read.add_argument("--format", choices=("text", "json"), default="text", help="text lines or JSON lines")
    add_store_arguments(read)
    read.set_defaults(func=with_store(_show))
    register_export(actions)


def _log_path(args: argparse.Namespace) -> Path | None:
    if args.path and args.state_dir:
        print("rules-engine audit: give the log (PATH) or --state-dir, not both", file=sys.stderr)
        return None
    if args.path:
        path = Path(args.path)
        if path.is_dir():
            path = path / AUDIT_FILE
    else:
        path = audit_log_path(resolve_state_dir(args.state_dir))
    if not path.is_file():
        print(f"rules-engine audit: no audit log at {path}", file=sys.stderr)
        return None
    other = _other_file(path)
    if other is not None:  # a slip of the tab key: not "TAMPERED"
        print(f"rules-engine audit: {path} is {other}, not an audit log: give the state dir or its {AUDIT_FILE}",
              file=sys.stderr)
        return None
    return path


def _other_file(path: Path) -> str | None:
    """What else of a state dir `path` is, if it is its head file or state database."""
    if path.name.endswith(".head"):
        return "a head file"
    with path.open("rb") as handle:
        return "an SQLite database (the state store)" if handle.read(16) == b"SQLite format 3\x00" else None


def _verify(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 2
    report = verify(path, expect_head=args.expect_head)
    if args.repair and report.ok and report.torn_tail is not None:
        try:
            with AuditLog(path, mode="repair"):
                pass
        except AuditError as exc:
            print(f"rules-engine audit: cannot repair: {exc}", file=sys.stderr)
            return 1
        print(f"repaired: removed the {report.torn_tail.reason.split(':')[0]} and recorded it as a torn_tail record")
        report = verify(path, expect_head=args.expect_head)
    elif args.repair and not report.ok:
        print("rules-engine audit: not repaired: only a torn final line can be repaired", file=sys.stderr)
    summary = report.summary()
    if getattr(args, "shown_as", None):  # --store: name the store, not the temporary export
        summary = summary.replace(*args.shown_as)
    print(summary, file=sys.stdout if report.ok else sys.stderr)
    if not report.ok or (args.strict and report.torn_tail is not None):
        return 1
    return 0


def _new_segment(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 2
    report = verify(path)
    if report.ok:
        print(f"rules-engine audit: {path} is intact: nothing to break ({report.summary()})", file=sys.stderr)
        return 1
    print(report.summary(), file=sys.stderr)
    try:
        with start_new_segment(path, report, mode="audit", accepted_by="rules-engine audit new-segment") as log:
            record = log.head
    except AuditError as exc:
        print(f"rules-engine audit: cannot start a new segment: {exc}", file=sys.stderr)
        return 1
    print(f"new chain segment: {path} (seq {record[0]} is the chain_break record); the damaged log is kept "
          f"unchanged beside it as {path.name}.damaged-*")
    return 0


def _note_unknown_kinds(path: Path, wanted: set[str]) -> None:
    """A `--kind` no record of the log has (a typo such as `decisions` showed nothing, exit 0,
    without a word): say so, with the nearest kind the log has."""
    present = {record["kind"] for record in show(path)}
    for kind in sorted(wanted - present):
        near = difflib.get_close_matches(kind, present, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        print(f"note: {path} has no record of kind {kind!r}{hint}; its kinds: {', '.join(sorted(present))}",
              file=sys.stderr)


def _show(args: argparse.Namespace) -> int:
    path = _log_path(args)
    if path is None:
        return 2
    kinds = None
    if args.kind:
        kinds = {k.strip() for item in args.kind for k in item.split(",") if k.strip()}
    bad_lines: list[int] = []

    def on_bad_line(line_no: int, reason: str) -> None:
        bad_lines.append(line_no)
        print(f"warning: {path}: line {line_no}: {reason}", file=sys.stderr)

    shown: set[str] = set()
    for record in show(path, rule=args.rule, kind=kinds, since=args.since, until=args.until, on_bad_line=on_bad_line):
        shown.add(record["kind"])
        if args.format == "json":
            print(json.dumps(record, sort_keys=True, separators=(",", ":")))
        else:
            print(format_record(record))
    if kinds and kinds - shown:
        _note_unknown_kinds(path, kinds - shown)
    if bad_lines:
        print(f"warning: {len(bad_lines)} line(s) skipped; run `rules-engine audit verify {path}`", file=sys.stderr)
        return 1
    return 0
