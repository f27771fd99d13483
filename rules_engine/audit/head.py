"""The head file: `<log>.head` holds the `seq` and `hash` of the last fsynced record.

It is only ever written after the log is fsynced up to the record it names, so it never
claims more than the log durably holds. A log that ends before the head's `seq`, or whose
record at that `seq` has another hash, was truncated or rewritten.

Two ways to write it: `write_head` replaces it atomically and durably (a temporary file,
fsynced, renamed over it); `overwrite_head` updates it in place without an fsync (one
write of `HEAD_BYTES` at offset 0: the content is padded to that fixed size). The audit
log does the latter after each decision's fsync and the former with its batches, so the
head may lag the log after a power cut: a head is a lower bound, and a log cut back past
it is still caught. (An in-place write is what makes a decision cost one fsync: a rename
would make the next fsync of the log wait for the file system to commit it.)
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


HEAD_BYTES = 192
"""The size of the head file's content: canonical JSON padded with spaces, then a newline."""


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
    for attempt in (1, 2):  # a read racing an in-place update may see it half written: read again
        try:
            data = json.loads(path.read_bytes())
            break
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if attempt == 2:
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


def encode_head(head: Head) -> bytes:
    """The head file's content, `HEAD_BYTES` long."""
    text = canonical_json({"seq": head.seq, "hash": head.hash, "time": head.time})
    return (text.ljust(HEAD_BYTES - 1) + "\n").encode()


def overwrite_head(fd: int, head: Head) -> bool:
    """Update the head file open at `fd` in place, without an fsync (see the module doc).
    False if the head does not fit `HEAD_BYTES` (then `write_head` it)."""
    content = encode_head(head)
    if len(content) != HEAD_BYTES:
        return False
    os.pwrite(fd, content, 0)
    return True


def write_head(log_path: str | os.PathLike[str], head: Head) -> None:
    """Durably replace the head file."""
    path = head_path(log_path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode_head(head))
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
