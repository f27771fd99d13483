"""The append-only, hash-chained audit log (one JSON record per line).

Durability: every record is handed to the kernel with a single `write` on an `O_APPEND`
descriptor before `append` returns, so a killed process (`kill -9`) loses nothing that
`append` returned. `sync=True` also fsyncs the log before returning, then points the head
file at the record: use it for decisions, before their order is sent. Other records are
fsynced in batches (`fsync_every` records or `fsync_interval` seconds, checked on append)
and on `sync()` / `close()`; a power cut may lose those not yet fsynced.

The head file is only ever written after the log is fsynced up to the record it names, so
it never claims more than the log durably holds. After a `sync=True` append it is updated
in place without an fsync; it is replaced durably with the batches and on `sync()` /
`close()` (see `rules_engine.audit.head`). So a decision costs one fsync on its way to its
order, and after a power cut the head may name an earlier record, which is allowed (a head
is a lower bound); truncation past it is still detected.

Opening an existing log continues its chain from the last record:
- A torn final line (bytes after the last newline: a write cut short by a power cut or a
  full disk) is removed and recorded in the log itself as a `torn_tail` record holding
  its length, SHA-256 and first bytes; nothing is dropped silently.
- A damaged last record, or a log shorter than its head file says, raises
  `AuditCorruptError` and nothing is appended: a broken chain is never continued.
- A second writer is refused (`AuditLockedError`): the log holds an exclusive `flock`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json.encoder
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rules_engine.audit.errors import AuditCorruptError, AuditError, AuditLockedError
from rules_engine.audit.head import (
    Head,
    HeadError,
    head_path,
    overwrite_head,
    read_head,
    remove_stale_temporaries,
    write_head,
)
from rules_engine.audit.records import (
    GENESIS,
    KIND_PATTERN,
    RecordError,
    canonical_json,
    parse_record,
    to_jsonable,
)
from rules_engine.audit.sync_thread import SyncThread, durable_already
from rules_engine.redact import Redactor, default_redactor

log = logging.getLogger(__name__)

_json_text = json.encoder.encode_basestring_ascii  # a string as canonical JSON writes it (ASCII, quoted)
TORN_EXCERPT_BYTES = 2048
_TAIL_BLOCK = 65536


def read_tail(fd: int, size: int) -> tuple[bytes | None, int]:
    """The last complete line of the file (without its newline, None if there is none)
    and the offset just after it, where a torn fragment (if any) starts."""
    buf = b""
    pos = size
    end = -1  # file offset of the last newline
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        if end < 0:
            found = buf.rfind(b"\n")
            if found >= 0:
                end = pos + found
        if end >= 0:
            before = buf.rfind(b"\n", 0, end - pos)
            if before >= 0:
                return buf[before + 1 : end - pos], end + 1
    if end < 0:
        return None, 0
    return buf[: end - pos], end + 1


_CHECKED_KINDS: set[str] = set()  # kinds already matched against KIND_PATTERN (a few dozen words)


def check_entry(kind: Any, rule_id: Any, rule_file_hash: Any, data: Any) -> None:
    """Raise for a record the log does not take (a kind that is no lower-case word, ids that
    are not text, data that is no mapping)."""
    if kind not in _CHECKED_KINDS:
        if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
            raise ValueError(f"audit kind {kind!r} must be a lower-case word such as 'decision'")
        if len(_CHECKED_KINDS) < 256:
            _CHECKED_KINDS.add(kind)
    if rule_id is not None and not isinstance(rule_id, str):
        raise TypeError("rule_id must be a string or None")
    if rule_file_hash is not None and not isinstance(rule_file_hash, str):
        raise TypeError("rule_file_hash must be a string or None")
    if data is not None and type(data) is not dict and not isinstance(data, Mapping):
        raise TypeError("data must be a mapping")


def encode_record(
    seq: int, prev: str, kind: str, rule_id: str | None, rule_hash: str | None, data: Mapping[str, Any], *,
    time: float, mode: str, redactor: Redactor,
) -> tuple[dict[str, Any], bytes]:
    """One audit record (redacted, hashed) and its line (newline-terminated ASCII): the format
    of the JSONL log, also kept line for line by the PostgreSQL audit chain."""
    rest: dict[str, Any] = {
        "seq": seq,
        "time": time,
        "kind": kind,
        "rule_id": None if rule_id is None else redactor.redact_name(rule_id),
        "rule_hash": rule_hash,
        "mode": mode,
        "prev": prev,
    }
    record = {**rest, "data": redactor.redact_json(data, to_jsonable)}
    # Canonical JSON sorts the keys and "data" < "hash" < every other field, so the line
    # is the hashed body with the hash spliced in after the data: one encoding, not two.
    data_json = canonical_json(record["data"])
    rest_json = _rest_json(rest)
    body = '{"data":' + data_json + "," + rest_json[1:]
    record["hash"] = digest = hashlib.sha256(body.encode("ascii")).hexdigest()
    line = ('{"data":' + data_json + ',"hash":"' + digest + '",' + rest_json[1:] + "\n").encode("ascii")
    return record, line


def _rest_json(rest: dict[str, Any]) -> str:
    """`canonical_json(rest)` for the fields other than data and hash, written out in their
    sorted order (the same text: strings through the encoder's own escaping, `seq` and `time`
    as `int` and `float` repr, as the encoder writes them); anything unusual goes through
    `canonical_json` itself."""
    seq, time, rule_id, rule_hash = rest["seq"], rest["time"], rest["rule_id"], rest["rule_hash"]
    if (type(seq) is not int or type(time) is not float or not math.isfinite(time)
            or type(rest["kind"]) is not str or type(rest["mode"]) is not str or type(rest["prev"]) is not str
            or (rule_id is not None and type(rule_id) is not str)
            or (rule_hash is not None and type(rule_hash) is not str)):
        return canonical_json(rest)
    return (f'{{"kind":{_json_text(rest["kind"])},"mode":{_json_text(rest["mode"])},"prev":{_json_text(rest["prev"])},'
            f'"rule_hash":{"null" if rule_hash is None else _json_text(rule_hash)},'
            f'"rule_id":{"null" if rule_id is None else _json_text(rule_id)},"seq":{seq!r},"time":{time!r}}}')


class AuditLog:
    """Appends hash-chained records to `path` (see the module docstring).

    Thread-safe. `mode` (the engine mode: `dry-run`, `validate`, `live`) is written in
    every record; `clock` gives each record's `time` (epoch seconds).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: str,
        clock: Callable[[], float] = time.time,
        redactor: Redactor | None = None,
        fsync_every: int = 1000,
        fsync_interval: float = 1.0,
        durable: bool = True,
        background_fsync_above: float = 0.00015,
    ):
        if not isinstance(mode, str) or not mode:
            raise ValueError("mode must be a non-empty string")
        self.path = Path(path)
        self.mode = mode
        self._clock = clock
        self._redactor = redactor or default_redactor
        # durable=False (replay, rule tests): fsync only on sync() and close(), never per record.
        self._durable = durable
        self._fsync_every = max(1, fsync_every) if durable else sys.maxsize
        self._fsync_interval = fsync_interval if durable else math.inf
        self._lock = threading.Lock()
        self._failed: str | None = None
        self._lost_file = False  # its path leads elsewhere, or another program wrote it: never recovers
        self._failed_at: float | None = None
        self._refused = 0  # records refused since the failure
        self._retry_at = 0.0
        self._synced_size = 0  # the log's size at its last successful fsync
        self._pending: list[bytes] = []  # the lines written since then, to write again on recovery
        self._unsynced = 0
        self._head_behind = False  # the head file was updated in place, not fsynced since
        self._head_fd: int | None = None  # the head file as last durably written, for in-place updates
        self._head_seq = 0  # the seq this process last pointed the head file at
        self._fsync_mutex = threading.Lock()  # one fsync or recovery at a time (taken after `_lock`, never before)
        self._syncer = SyncThread(self._prepare_background_sync)  # `append_durable`'s fsyncs
        # `append_durable` fsyncs on the sync thread only where an fsync costs more than handing it
        # over (about 0.05-0.1 ms); `_fsync_seconds` is the recent cost of one (a moving average).
        self.background_fsync_above = background_fsync_above
        self._fsync_seconds = 0.0
        self._last_sync = clock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # a read-only mount, a folder of another user's
            raise AuditError(f"cannot open audit log {self.path} for writing: {exc.strerror} (the state dir "
                             f"must be writable by the user the engine runs as)") from None
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AuditLockedError(f"audit log {self.path} is open for writing in another process") from None
            remove_stale_temporaries(self.path)
            self._open_chain()
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    # ------------------------------------------------------------------ opening

    def _open_chain(self) -> None:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        line, fragment_start = read_tail(self._fd, size)
        self._size = self._synced_size = fragment_start
        if line is None:
            self._seq, self._prev = 0, GENESIS
        else:
            try:
                record = parse_record(line)
            except RecordError as exc:
                raise AuditCorruptError(self.path, f"its last complete record is damaged: {exc}") from None
            self._seq, self._prev = record["seq"], record["hash"]
        try:
            head = read_head(self.path)
        except HeadError as exc:
            raise AuditCorruptError(self.path, str(exc)) from None
        if head is not None and head.seq > self._seq:
            raise AuditCorruptError(
                self.path,
                f"it ends at seq {self._seq} but its head file says seq {head.seq} was written: "
                f"records were removed from the end",
            )
        if head is not None and head.seq == self._seq and head.hash != self._prev:
            raise AuditCorruptError(
                self.path, f"its last record (seq {self._seq}) differs from the one the head file names"
            )
        if fragment_start < size:
            self._seal_torn_tail(fragment_start, size)

    def _seal_torn_tail(self, start: int, size: int) -> None:
        assert self._fd is not None
        digest = hashlib.sha256()
        offset = start
        while offset < size:
            chunk = os.pread(self._fd, min(_TAIL_BLOCK, size - offset), offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        excerpt = os.pread(self._fd, min(TORN_EXCERPT_BYTES, size - start), start)
        os.ftruncate(self._fd, start)
        os.fsync(self._fd)
        data = {
            "offset": start,
            "length": size - start,
            "sha256": digest.hexdigest(),
            "excerpt": excerpt.decode("utf-8", errors="replace"),
            "note": "an incomplete final line (an interrupted write) was removed when the log was reopened",
        }
        self._write_records([("torn_tail", None, None, data)], sync=True)
        log.warning("audit log %s: an incomplete final line (%d bytes at offset %d: a write cut short by a power "
                    "cut, a crash or a full disk) was removed and recorded as torn_tail record %d; its bytes' "
                    "sha256 and an excerpt are in that record", self.path, size - start, start, self._seq)

    # ------------------------------------------------------------------ writing

    @property
    def fsync_interval(self) -> float:
        """Seconds after the last durable sync at which an append syncs the log itself."""
        return self._fsync_interval

    @fsync_interval.setter
    def fsync_interval(self, seconds: float) -> None:
        with self._lock:
            self._fsync_interval = seconds if self._durable else math.inf

    @property
    def head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last record written (`(0, GENESIS)` for an empty log)."""
        with self._lock:
            return self._seq, self._prev

    def append(
        self,
        kind: str,
        *,
        rule_id: str | None = None,
        rule_file_hash: str | None = None,
        data: Mapping[str, Any] | None = None,
        sync: bool = False,
    ) -> dict[str, Any]:
        """Write one record and return it as written (redacted, with `seq`, `prev`, `hash`).

        `kind` is a lower-case word (`trigger`, `guard`, `decision`, ...). With `sync=True`
        the record is on disk (fsynced, head file updated) when this returns. Raises
        AuditError if the record could not be written; the log is then left as it was.
        """
        check_entry(kind, rule_id, rule_file_hash, data)
        with self._lock:
            return self._write_records([(kind, rule_id, rule_file_hash, data or {})], sync=sync)[0]

    def append_durable(
        self,
        kind: str,
        *,
        rule_id: str | None = None,
        rule_file_hash: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Callable[[], None]]:
        """Write one record as `append` does and start its fsync on the log's sync thread
        (`audit.sync_thread`); returns the record and `wait`, which returns once the record is
        on disk as with `sync=True` (fsynced, the head file pointing at it or later), or raises
        AuditError. For a decision: its order is signed while the disk works, and `wait` is
        called right before the order leaves. Where an fsync costs less than handing it to the
        thread (recently under `background_fsync_above` seconds: tmpfs, a disk with a
        battery-backed cache) it is done here, as `sync=True`, and `wait` has nothing to do."""
        check_entry(kind, rule_id, rule_file_hash, data)
        with self._lock:
            inline = self._fsync_seconds < self.background_fsync_above  # cheaper than the hand-off
            record = self._write_records([(kind, rule_id, rule_file_hash, data or {})], sync=inline)[0]
            size = self._size
            if not self._durable or self._synced_size >= size:
                return record, durable_already
        return record, self._syncer.begin(size)

    def _fsync(self, fd: int) -> None:
        """`os.fsync`, keeping a moving average of what one costs (`append_durable`)."""
        started = time.perf_counter()
        os.fsync(fd)
        self._fsync_seconds += 0.25 * (time.perf_counter() - started - self._fsync_seconds)

    def _prepare_background_sync(self) -> tuple[int, Callable[[], None]]:
        """For the sync thread: the size its next fsync covers, and the fsync (see `append_durable`)."""
        with self._lock:
            if self._fd is None:
                raise AuditError(f"audit log {self.path} is closed")
            if self._failed:
                raise AuditError(f"audit log {self.path} is unusable since an earlier failure: {self._failed}")
            fd, size, seq, prev = self._fd, self._size, self._seq, self._prev

        def fsync() -> None:
            with self._fsync_mutex:
                try:
                    self._fsync(fd)
                    error = None
                except OSError as exc:
                    error = exc.strerror
            with self._lock:
                if error is not None:
                    self._fail(f"fsync failed ({error})")
                    raise AuditError(f"could not sync audit log {self.path}: {error}")
                self._synced_in_background(size, seq, prev)

        return size, fsync

    def _synced_in_background(self, size: int, seq: int, prev: str) -> None:
        """The log is durable up to `size` (record `seq`, hash `prev`): drop the lines kept for a
        recovery up to there, and point the head file at `seq` in place (as `sync=True`)."""
        while self._pending and self._synced_size + len(self._pending[0]) <= size:
            self._synced_size += len(self._pending.pop(0))
        if not self._pending:
            self._unsynced = 0
        if seq <= self._head_seq or self._fd is None:
            return
        try:
            self._head_behind = not self._point_head(Head(seq, prev, float(self._clock())), durable=False)
        except OSError as exc:
            self._fail(f"head file update failed ({exc.strerror})")
            raise AuditError(f"could not update the head of audit log {self.path}: {exc.strerror}") from None
        self._head_seq = seq

    def _point_head(self, head: Head, *, durable: bool) -> bool:
        """Point the head file at `head`: in place unless `durable` (or it cannot be: no head
        file open yet, or the head does not fit), else replaced durably. Whether it was."""
        if not durable and self._head_fd is not None and overwrite_head(self._head_fd, head):
            return False
        write_head(self.path, head)
        self._reopen_head()
        return True

    def append_many(
        self, entries: Iterable[tuple[str, str | None, str | None, Mapping[str, Any] | None]]
    ) -> list[dict[str, Any]]:
        """Write several records, each `(kind, rule_id, rule_file_hash, data)` as for
        `append` (not synced), with one `write`: the records of one engine decision. If the
        write fails none of them is kept. Returns them as written."""
        batch = []
        for kind, rule_id, rule_file_hash, data in entries:
            check_entry(kind, rule_id, rule_file_hash, data)
            batch.append((kind, rule_id, rule_file_hash, data or {}))
        with self._lock:
            return self._write_records(batch, sync=False)

    def _write_records(
        self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]], *, sync: bool
    ) -> list[dict[str, Any]]:
        if self._fd is None:
            raise AuditError(f"audit log {self.path} is closed")
        if self._failed and not self._recover_locked():
            self._refused += len(entries)
            raise AuditError(f"audit log {self.path} is unusable since an earlier failure: {self._failed}")
        seq, prev = self._seq, self._prev
        records, lines = [], []
        for kind, rule_id, rule_hash, data in entries:
            seq += 1
            record, line = self._encode(seq, prev, kind, rule_id, rule_hash, data)
            prev = record["hash"]
            records.append(record)
            lines.append(line)
        if not records:
            return records
        blob = lines[0] if len(lines) == 1 else b"".join(lines)
        try:
            self._write_line(blob)
        except AuditError:
            self._refused += len(records)
            raise
        if self._durable:
            self._pending.append(blob)
        self._seq, self._prev = seq, prev
        self._unsynced += len(records)
        if sync and self._durable:  # a decision on its way to its order: one fsync, the head in place
            self._sync_locked(durable_head=False)
        elif self._unsynced >= self._fsync_every or self._clock() - self._last_sync >= self._fsync_interval:
            self._sync_locked()
        return records

    def _encode(
        self, seq: int, prev: str, kind: str, rule_id: str | None, rule_hash: str | None, data: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """The record (redacted, hashed) and its line."""
        return encode_record(seq, prev, kind, rule_id, rule_hash, data, time=float(self._clock()), mode=self.mode,
                             redactor=self._redactor)

    def _write_line(self, line: bytes) -> None:
        assert self._fd is not None
        view = memoryview(line)
        written = 0
        try:
            while written < len(line):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
                self._fail(f"write failed ({exc.strerror})", retry_after=0.0)  # the log is as it was
            except OSError:
                self._fail(f"write failed ({exc.strerror}) and the partial record could not be removed")
            raise AuditError(f"could not write to audit log {self.path}: {exc.strerror}") from None
        self._size += len(line)

    def _sync_locked(self, durable_head: bool = True) -> None:
        """Fsync the log, then point the head file at its last record: replaced durably if
        `durable_head`, else updated in place (the next durable sync replaces it)."""
        if self._fd is None:
            return
        try:
            with self._fsync_mutex:
                self._fsync(self._fd)
            durable_head = self._point_head(Head(self._seq, self._prev, float(self._clock())), durable=durable_head)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the data: the records since the
            # last good fsync are written again by `_recover_locked` before anything new.
            self._fail(f"fsync failed ({exc.strerror})")
            raise AuditError(f"could not sync audit log {self.path}: {exc.strerror}") from None
        self._synced_size = self._size
        self._pending.clear()
        self._unsynced = 0
        self._head_behind = not durable_head
        self._head_seq = self._seq
        if durable_head:
            self._last_sync = self._clock()
        self._syncer.note_synced(self._size)

    def _reopen_head(self) -> None:
        """Open the head file just written (a new file: the rename replaced the old one)."""
        if self._head_fd is not None:
            os.close(self._head_fd)
            self._head_fd = None
        self._head_fd = os.open(head_path(self.path), os.O_WRONLY | os.O_CLOEXEC)

    # ------------------------------------------------------------------ failure and recovery

    RETRY_INTERVAL = 0.5
    """While failed, an append tries to recover at most this often (seconds); `sync()` always tries."""

    @property
    def failure(self) -> tuple[str, float] | None:
        """Why the log cannot take records, and since when (epoch seconds); None while it can."""
        with self._lock:
            return None if self._failed is None or self._failed_at is None else (self._failed, self._failed_at)

    def _fail(self, reason: str, retry_after: float = RETRY_INTERVAL) -> None:
        """Refuse records until `_recover_locked` succeeds (tried again after RETRY_INTERVAL)."""
        if self._failed is None:
            self._failed_at = float(self._clock())
            self._refused = 0
        self._failed = reason
        self._retry_at = float(self._clock()) + retry_after

    def _recover_locked(self, force: bool = False) -> bool:
        """Try to make the log usable again after a failed write or fsync: cut it back to its
        last successful fsync, write the records since then again (the kernel may have
        dropped them), fsync it and write the head durably. Then record the outage in a
        synced `storage_recovered` record. False (still failed) if the disk still refuses."""
        if self._failed is None:
            return True
        if self._fd is None or self._lost_file or (not force and self._clock() < self._retry_at):
            return False
        if not self._durable:  # nothing was fsynced but on sync()/close(): no lines kept to write again
            self._synced_size, self._pending = self._size, []
        blob = b"".join(self._pending)
        try:
            with self._fsync_mutex:
                os.ftruncate(self._fd, self._synced_size)
                view, written = memoryview(blob), 0
                while written < len(blob):
                    written += os.write(self._fd, view[written:])
                os.fsync(self._fd)
            write_head(self.path, Head(self._seq, self._prev, float(self._clock())))
            self._reopen_head()
        except OSError as exc:
            self._fail(f"{self._failed.split(';')[0]}; still failing: {exc.strerror}")
            return False
        self._size = self._synced_size = self._synced_size + len(blob)
        self._pending.clear()
        self._unsynced, self._head_behind = 0, False
        self._head_seq = self._seq
        self._last_sync = self._clock()
        self._syncer.note_synced(self._size)
        failed, since, refused = self._failed, self._failed_at, self._refused
        self._failed = self._failed_at = None
        self._refused = 0
        data = {"part": "audit", "error": failed, "failed_at": since, "refused_records": refused,
                "rewritten_bytes": len(blob),
                "note": "the audit log could not be written; records refused meanwhile are not in the log"}
        try:
            self._write_records([("storage_recovered", None, None, data)], sync=True)
        except AuditError:
            return False
        return True

    def recover(self) -> bool:
        """Try to recover now (see `_recover_locked`); whether the log can take records."""
        with self._lock:
            return self._recover_locked(force=True)

    def _check_file_locked(self) -> None:
        """Fail for good if the path no longer leads to the file this log writes, or the file's
        size is not what this log wrote: an editor's save, `sed -i`, `mv` or a rotation replaced
        it (this log would go on writing to a file no longer there, and its lock with it), or
        someone wrote to it. Only a restart, which verifies the file, can go on from there."""
        if self._fd is None or self._lost_file:
            return
        try:
            mine = os.fstat(self._fd)
            there: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            there = None
        except OSError:
            return  # the disk's trouble: the writes and fsyncs say so
        if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            what = "was replaced or removed"
        elif not self._failed and mine.st_size != self._size:
            what = "was written to by another program"
        else:
            return
        self._lost_file = True
        self._fail(f"{self.path} {what} while the engine writes it (an editor's save, sed -i, mv, a log "
                   f"rotation?); no record is written from now on: stop the engine, keep the files as evidence "
                   f"and start it again (the start verifies the log)")

    def sync(self) -> None:
        """Fsync every record written so far and the head file naming the last one. A failed
        log tries to recover first (AuditError if it cannot). Each call first checks that the
        log's path still leads to its file (`_check_file_locked`)."""
        with self._lock:
            self._check_file_locked()
            if self._failed and not self._recover_locked(force=True):
                raise AuditError(f"audit log {self.path} is unusable since an earlier failure: {self._failed}")
            if self._unsynced or self._head_behind:
                self._sync_locked()

    def close(self) -> None:
        """Sync, release the lock and close. Idempotent."""
        self._syncer.close()
        with self._lock:
            if self._fd is None:
                return
            try:
                if self._failed:
                    self._recover_locked(force=True)
                if (self._unsynced or self._head_behind) and not self._failed:
                    self._sync_locked()
            finally:
                if self._head_fd is not None:
                    os.close(self._head_fd)
                    self._head_fd = None
                os.close(self._fd)  # closing releases the flock
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, mode={self.mode!r}, seq={self._seq})"
