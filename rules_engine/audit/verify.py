"""Check an audit log end to end: every record's hash, the chain, the head file, and an
optional external anchor. Stops at the first problem and names its line."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules_engine.audit.head import HeadError, head_path, read_head
from rules_engine.audit.records import GENESIS, RecordError, parse_record

_ANCHOR = re.compile(r"^(?:(\d+):)?([0-9a-f]{64})$")

LOOKAROUND = 10_000
"""How many lines `verify` looks ahead for the record a seq jump skipped (moved, not missing),
and how many records back it remembers to tell a duplicate from a record moved back."""

_KIND_WORDS = {"edited": "record edited", "damaged": "damaged line (not an audit record)"}


def _sequence_problem(path: Path, line_no: int, start: int, record: dict[str, Any], expected: int,
                      recent: dict[int, str]) -> Problem:
    """Why the record on `line_no` (at byte `start`) has seq `record["seq"]` where `expected`
    was due: records missing, out of order (the expected one comes later, or this one came
    already), or a duplicate of an earlier record."""
    seq = record["seq"]
    if seq < expected:
        if recent.get(seq) == record["hash"]:
            return Problem(line_no, "duplicated", f"seq {seq} where {expected} was expected: "
                                                  f"a duplicate of an earlier record")
        return Problem(line_no, "reordered", f"seq {seq} where {expected} was expected: records out of order "
                                             f"(seq {seq} belongs earlier)")
    found = _find_seq(path, start, expected)
    if found is not None:
        return Problem(line_no, "reordered", f"seq {seq} where {expected} was expected: records out of order "
                                             f"(seq {expected} is on line {line_no + found})")
    gap = f"seq {expected}" if seq == expected + 1 else f"seqs {expected} to {seq - 1}"
    return Problem(line_no, "missing", f"seq {seq} where {expected} was expected: records missing ({gap})")


def _find_seq(path: Path, start: int, seq: int) -> int | None:
    """How many lines after the one at byte `start` the record with `seq` is (within
    LOOKAROUND lines), or None."""
    with open(path, "rb") as handle:
        handle.seek(start)
        handle.readline()
        for distance, raw in enumerate(handle, 1):
            if distance > LOOKAROUND:
                return None
            try:
                found = json.loads(raw).get("seq")
            except (ValueError, AttributeError):
                continue
            if found == seq:
                return distance
    return None


@dataclass(frozen=True)
class Problem:
    """What is wrong and where: `line` is 1-based in the log file."""

    line: int
    kind: str  # "edited" | "damaged" | "missing" | "reordered" | "duplicated" | "truncated" | "torn_tail"
    #            | "head" | "anchor"
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


@dataclass
class VerifyReport:
    """The outcome of `verify`. `ok` is False when the log was altered or truncated; a torn
    final line alone (an interrupted write, see `torn_tail`) leaves `ok` True."""

    path: Path
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problem: Problem | None = None
    torn_tail: Problem | None = None
    anchors_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            verdict = "TRUNCATED" if self.problem.kind == "truncated" else "TAMPERED"
            return f"{verdict}: {self.path}: {self.problem}"
        text = f"OK: {self.path}: {self.records} records, head seq {self.head_seq} hash {self.head_hash}"
        if self.anchors_checked:
            text += f" (matches {', '.join(self.anchors_checked)})"
        if self.torn_tail is not None:
            text += (
                f"\nWARNING: {self.torn_tail}. The chain before it is intact; "
                f"`rules-engine audit verify --repair` or the next engine start records and removes it."
            )
        return text


def parse_anchor(text: str) -> tuple[int | None, str]:
    """`HASH` or `SEQ:HASH` -> (seq or None, hash). Raises ValueError."""
    match = _ANCHOR.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not HASH or SEQ:HASH (a 64-digit SHA-256 hex digest)")
    return (int(match.group(1)) if match.group(1) else None), match.group(2)


def verify(path: str | os.PathLike[str], *, expect_head: str | None = None) -> VerifyReport:
    """Verify the log at `path` (a file; missing file -> FileNotFoundError).

    `expect_head` (`HASH` or `SEQ:HASH`, e.g. a head noted elsewhere earlier) must name a
    record of this log; otherwise the log was truncated or rewritten since.
    """
    path = Path(path)
    report = VerifyReport(path)
    anchor_seq, anchor_hash = parse_anchor(expect_head) if expect_head else (None, None)
    head_error: str | None = None
    try:
        head = read_head(path)
    except HeadError as exc:
        head, head_error = None, str(exc)
    anchor_found = False
    head_hash_at_seq: str | None = None
    recent: dict[int, str] = {}  # seq -> hash of the last LOOKAROUND good records (to tell a duplicate)
    with open(path, "rb") as handle:
        line_no = 0
        offset = 0
        for raw in handle:
            line_no += 1
            start, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                report.torn_tail = Problem(
                    line_no, "torn_tail", f"torn final line ({len(raw)} bytes, no newline): an interrupted write"
                )
                break
            try:
                record = parse_record(raw[:-1])
            except RecordError as exc:
                kind = "edited" if str(exc).startswith("hash mismatch") else "damaged"
                report.problem = Problem(line_no, kind, f"{_KIND_WORDS[kind]}: {exc}")
                break
            expected_seq = report.head_seq + 1
            if record["seq"] != expected_seq:
                report.problem = _sequence_problem(path, line_no, start, record, expected_seq, recent)
                break
            if record["prev"] != report.head_hash:
                report.problem = Problem(
                    line_no, "edited",
                    f"record edited: prev does not match the hash of the record before (line {line_no - 1}): "
                    f"that record was edited and its hash recomputed, or this one was replaced",
                )
                break
            report.records += 1
            report.head_seq, report.head_hash = record["seq"], record["hash"]
            recent[record["seq"]] = record["hash"]
            if len(recent) > LOOKAROUND:
                del recent[next(iter(recent))]
            if head is not None and record["seq"] == head.seq:
                head_hash_at_seq = record["hash"]
            if anchor_hash is not None and record["hash"] == anchor_hash:
                if anchor_seq is None or anchor_seq == record["seq"]:
                    anchor_found = True
    if report.problem is not None:
        return report
    end = report.records + 1
    if head_error is not None:
        report.problem = Problem(0, "head", head_error)
        return report
    if head is not None:
        if head.seq > report.head_seq:
            report.problem = Problem(
                end,
                "truncated",
                f"the log ends at seq {report.head_seq} but {head_path(path).name} says seq {head.seq} "
                f"was written: records were removed from the end",
            )
            return report
        if head_hash_at_seq != head.hash:
            report.problem = Problem(
                head.seq, "head", f"the record at seq {head.seq} differs from the one {head_path(path).name} names"
            )
            return report
        report.anchors_checked.append(head_path(path).name)
    if anchor_hash is not None:
        if not anchor_found:
            where = f"seq {anchor_seq} with " if anchor_seq is not None else ""
            truncated = (anchor_seq or 0) > report.head_seq
            report.problem = Problem(  # a record rewritten is somewhere in the log: no line to name
                end if truncated else 0, "truncated" if truncated else "anchor",
                f"no record has {where}hash {anchor_hash}: the log was truncated or rewritten",
            )
            return report
        report.anchors_checked.append("--expect-head")
    return report
