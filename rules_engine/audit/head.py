"""The head file: `<log>.head` holds the `seq` and `hash` of the last fsynced record.

It is replaced atomically (write a temporary file, fsync it, rename) after each fsync of
the log, so it never claims more than the log durably holds. A log that ends before the
head's `seq`, or whose record at that `seq` has another hash, was truncated or rewritten.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rules_engine.audit.records import canonical_json

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    time: float


class HeadError(ValueError):
    """The head file exists but cannot be read."""


def head_path(log_path: str | os.PathLike[str]) -> Path:
    """`state/audit.jsonl` -> `state/audit.jsonl.head`."""
    path = Path(log_path)
    return path.with_name(path.name + ".head")


def read_head(log_path: str | os.PathLike[str]) -> Head | None:
    """The head recorded for `log_path`, None if there is no head file."""
    path = head_path(log_path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HeadError(f"head file {path} is unreadable ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("seq"), int)
        or data["seq"] < 1
        or not isinstance(data.get("hash"), str)
        or not _HEX64.match(data["hash"])
        or not isinstance(data.get("time"), (int, float))
    ):
        raise HeadError(f"head file {path} does not hold a seq and a SHA-256 hash")
    return Head(data["seq"], data["hash"], float(data["time"]))


def write_head(log_path: str | os.PathLike[str], head: Head) -> None:
    """Durably replace the head file."""
    path = head_path(log_path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(canonical_json({"seq": head.seq, "hash": head.hash, "time": head.time}).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(log_path: str | os.PathLike[str]) -> None:
    """Delete head temporaries left by a process killed mid-replace (call with the log lock held)."""
    path = head_path(log_path)
    for stale in path.parent.glob(path.name + ".*.tmp"):
        stale.unlink(missing_ok=True)
