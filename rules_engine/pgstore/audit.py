"""The audit chain on PostgreSQL: one hash chain per key in the `audit` table, each row the
record's line exactly as the JSONL log writes it (`audit.log.encode_record`), with its seq,
prev hash, hash and the writer's epoch in columns.

    audit = PgAuditLog(settings, epoch=lease.epoch, mode="live")
    audit.append("decision", rule_id=..., data={...}, sync=True)   # committed when it returns
    export_jsonl(settings, "audit.jsonl")                          # `rules-engine audit verify audit.jsonl`

Every append is one transaction that begins with the cell's epoch check, so a fenced engine
cannot add a record; the primary key (key_id, seq) makes a fork impossible: two writers of
one seq cannot both commit. Every commit is synchronous, so `sync=True` costs nothing more.
After a lost connection the chain's head is read again from the table (a commit whose answer
was lost may or may not have happened), and the first record after the outage is a
`storage_recovered` record saying how many records were refused meanwhile.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rules_engine.audit.errors import AuditError
from rules_engine.audit.log import check_entry, encode_record
from rules_engine.audit.records import GENESIS
from rules_engine.pgstore.connection import Connection, StoreSettings, connect
from rules_engine.redact import Redactor, default_redactor
from rules_engine.state.store import StateStoreError

_PAGE = 5000


class PgAuditLog:
    """Appends hash-chained records to the key's chain in the store (see the module docstring).
    Thread-safe. Has no `path`: readers of the JSONL file (power-cut restore, audited
    answers) do not apply, since every commit is synchronous."""

    def __init__(self, settings: StoreSettings, *, epoch: int | None, mode: str,
                 clock: Callable[[], float] = time.time, redactor: Redactor | None = None) -> None:
        if not isinstance(mode, str) or not mode:
            raise ValueError("mode must be a non-empty string")
        self.settings = settings
        self.mode = mode
        self.epoch = epoch
        self._clock = clock
        self._redactor = redactor or default_redactor
        self._lock = threading.Lock()
        self._seq, self._prev = 0, GENESIS
        self._refused = 0
        self._failed_since: tuple[str, float] | None = None
        self._db = Connection(settings, epoch, clock, on_reconnect=self._read_head)
        try:
            self._db.open()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None

    def _read_head(self, conn: Any) -> None:
        row = conn.execute("SELECT seq, hash FROM audit WHERE key_id = %s ORDER BY seq DESC LIMIT 1",
                           (self.settings.key_id,)).fetchone()
        self._seq, self._prev = (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    @property
    def head(self) -> tuple[int, str]:
        """`(seq, hash)` of the last record written (`(0, GENESIS)` for an empty chain)."""
        with self._lock:
            return self._seq, self._prev

    @property
    def failure(self) -> tuple[str, float] | None:
        """Why the chain cannot take records and since when; None while it can."""
        return self._db.failure

    @property
    def fenced(self) -> bool:
        """Whether a write found the key held by a newer epoch (this chain takes no more records)."""
        return self._db._fenced is not None

    def append(self, kind: str, *, rule_id: str | None = None, rule_file_hash: str | None = None,
               data: Mapping[str, Any] | None = None, sync: bool = False) -> dict[str, Any]:
        """Write one record (committed when this returns) and return it as written."""
        check_entry(kind, rule_id, rule_file_hash, data)
        with self._lock:
            return self._write([(kind, rule_id, rule_file_hash, data or {})])[0]

    def append_many(self, entries: Iterable[tuple[str, str | None, str | None, Mapping[str, Any] | None]]
                    ) -> list[dict[str, Any]]:
        """Write several records in one transaction (none of them if it fails)."""
        batch = []
        for kind, rule_id, rule_file_hash, data in entries:
            check_entry(kind, rule_id, rule_file_hash, data)
            batch.append((kind, rule_id, rule_file_hash, data or {}))
        with self._lock:
            return self._write(batch)

    def _write(self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        if not entries:
            return []
        if self._db.failure is not None and self._failed_since is None:
            self._failed_since = self._db.failure
        prefixed = False
        try:
            with self._db.transaction(pipeline=True) as conn:  # a reconnect re-reads the head first (`_read_head`)
                batch = entries
                if self._failed_since is not None:
                    reason, since = self._failed_since
                    prefixed = True
                    batch = [("storage_recovered", None, None, {
                        "part": "audit", "error": reason, "failed_at": since, "refused_records": self._refused,
                        "note": "the audit chain could not be written; records refused meanwhile are not in it"}),
                        *entries]
                records, rows = self._encode(batch)
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO audit (key_id, seq, prev_hash, hash, epoch, time, kind, rule_id, line) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        except StateStoreError as exc:
            self._refused += len(entries)
            if self._db.failure is not None and self._failed_since is None:
                self._failed_since = self._db.failure
            raise AuditError(f"audit chain: {exc}") from None
        self._failed_since, self._refused = None, 0
        self._seq, self._prev = records[-1]["seq"], records[-1]["hash"]
        return records[1:] if prefixed else records

    def _encode(self, entries: list[tuple[str, str | None, str | None, Mapping[str, Any]]]
                ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        seq, prev = self._seq, self._prev
        records, rows = [], []
        for kind, rule_id, rule_hash, data in entries:
            seq += 1
            record, line = encode_record(seq, prev, kind, rule_id, rule_hash, data, time=float(self._clock()),
                                         mode=self.mode, redactor=self._redactor)
            rows.append((self.settings.key_id, seq, prev, record["hash"], self.epoch or 0, record["time"], kind,
                         record["rule_id"], line.decode("ascii").rstrip("\n")))
            prev = record["hash"]
            records.append(record)
        return records, rows

    def find_answer(self, cl_ord_id: str, since: float) -> dict[str, Any] | None:
        """The result the exchange gave for the order `cl_ord_id` as its `response` record holds
        it, looking at records written from `since` (less 5 s: clock steps); None if none was
        audited (`audit.tail.audited_answer` for the chain in the table)."""
        try:
            with self._db.reading() as conn:
                rows = conn.execute("SELECT line FROM audit WHERE key_id = %s AND kind = 'response' AND time >= %s "
                                    "AND strpos(line, %s) > 0 ORDER BY seq DESC",
                                    (self.settings.key_id, since - 5, json.dumps(cl_ord_id))).fetchall()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None
        for (line,) in rows:
            data = json.loads(line).get("data") or {}
            if data.get("cl_ord_id") == cl_ord_id:
                result = data.get("result")
                return result if isinstance(result, dict) else None
        return None

    def find_decision(self, cl_ord_id: str, since: float) -> bool:
        """Whether the chain holds the `decision` record of the order `cl_ord_id` (written right
        before it is sent), among records written from `since` (less 5 s: clock steps)
        (`audit.tail.audited_decision` for the chain in the table)."""
        try:
            with self._db.reading() as conn:
                rows = conn.execute("SELECT line FROM audit WHERE key_id = %s AND kind = 'decision' AND time >= %s "
                                    "AND strpos(line, %s) > 0 ORDER BY seq DESC",
                                    (self.settings.key_id, since - 5, json.dumps(cl_ord_id))).fetchall()
        except StateStoreError as exc:
            raise AuditError(f"audit chain: {exc}") from None
        for (line,) in rows:
            data = json.loads(line).get("data") or {}
            if data.get("cl_ord_id") == cl_ord_id and "intent" in data:
                return True
        return False

    def sync(self) -> None:
        """Every record is committed when written; while failed, try to reach the store again
        (AuditError if it still cannot be written)."""
        if self._db.failure is None:
            return
        with self._lock:
            try:
                with self._db.transaction():
                    pass
            except StateStoreError as exc:
                raise AuditError(f"audit chain: {exc}") from None

    def recover(self) -> bool:
        try:
            self.sync()
        except AuditError:
            return False
        return True

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PgAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgAuditLog({self.settings.shown!r}, mode={self.mode!r}, seq={self._seq})"


def tail_records(settings: StoreSettings, limit: int = 20_000) -> list[dict[str, Any]]:
    """The key's last `limit` records, oldest first (what `rules-engine status` reads of a
    stopped engine)."""
    conn = connect(settings)
    try:
        rows = conn.execute("SELECT line FROM audit WHERE key_id = %s ORDER BY seq DESC LIMIT %s",
                            (settings.key_id, limit)).fetchall()
    finally:
        conn.close()
    return [json.loads(line) for (line,) in reversed(rows)]


def export_lines(settings: StoreSettings) -> Iterator[str]:
    """The key's chain as JSONL lines (each ending in a newline), in seq order."""
    conn = connect(settings)
    try:
        last = 0
        while True:
            rows = conn.execute("SELECT seq, line FROM audit WHERE key_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                                (settings.key_id, last, _PAGE)).fetchall()
            if not rows:
                return
            for seq, line in rows:
                yield line + "\n"
                last = int(seq)
    finally:
        conn.close()


def export_jsonl(settings: StoreSettings, path: str | os.PathLike[str]) -> int:
    """Write the key's chain to `path` in the JSONL log's format; the number of records."""
    count = 0
    with open(Path(path), "w", encoding="ascii") as handle:
        for line in export_lines(settings):
            handle.write(line)
            count += 1
    return count
