"""Signal fan-out in the PostgreSQL store: signals accepted by the intake, one delivery row per
subscribed account (store key), and how each key's cell takes its rows and decides each once.

    stored = store_signal(conn, "signalco", "sig-42", ["sig-42", "mac:..."], payload, accounts, 30.0, "host:pid")
    # one transaction: the signal, one `pending` delivery per key, a NOTIFY per key (in `serving_order`); committed
    claimer = DeliveryClaimer(settings, epoch=lease.epoch)
    taken, expired = claimer.claim(time=now)  # FOR UPDATE SKIP LOCKED: each pending row moves into the
                                       # key's signal inbox (`taken`), or is `expired` when too late

Exactly once per key: taking a delivery moves it, in one fenced transaction of the cell, into
the key's `signal_inbox` (the webhook's durable inbox); the commit that saves the signal's
decision deletes the inbox row and marks the delivery `done` in the same transaction
(`complete_deliveries`, called by `PgStateStore.consume_signals`). A crash in between leaves
the signal in the inbox, decided at the next start (or by the engine that takes the key over),
once. A delivery still `pending` past its provider's `max_age` (the database's clock judges)
is marked `expired` instead of being taken; so is one left in the inbox by a crash when the
engine comes back too late (`expire_stale`).

Tables (created with the store's, `ensure_schema`):

    fanout_signals(provider, signal_id, payload, received_at, intake, deliveries)  PK(provider, signal_id)
    fanout_signal_ids(provider, alias, signal_id)   every id of a signal (its declared id, its MAC id):
                                                    a retry under any of them is a duplicate
    fanout_deliveries(key_id, provider, signal_id, status, account, created_at, expires_at,
                      taken_at, taken_epoch, inbox_seq, done_at)  PK(key_id, provider, signal_id)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules_engine import jsoncodec
from rules_engine.crashpoints import crash_point
from rules_engine.pgstore.connection import Connection, StoreSettings, _first_line, connect
from rules_engine.state.store import StateStoreError

CLAIM_BATCH = 100
"""Deliveries one claim takes at most."""


WORKER_CHANNEL = "rules_engine_deliveries"
"""The NOTIFY channel a worker listens on for all its cells: each notification's payload is a key."""


def channel(key_id: str) -> str:
    """The NOTIFY channel that wakes the cell of `key_id` (an identifier of at most 63 bytes)."""
    return "rules_engine_delivery_" + hashlib.sha256(key_id.encode()).hexdigest()[:16]


def serving_order(keys: Sequence[str], provider: str, signal_id: str) -> list[str]:
    """The accounts of one signal in the order they are served (notified, so woken): the sorted
    keys rotated to start at a position drawn from the signal's id, so from signal to signal
    every account is first (and last) equally often, not always the same one (design note 4.5)."""
    ordered = sorted(keys)
    if not ordered:
        return ordered
    start = int.from_bytes(hashlib.sha256(f"{provider}\0{signal_id}".encode()).digest()[:8], "big") % len(ordered)
    return ordered[start:] + ordered[:start]


# ----------------------------------------------------------------------------- intake side


@dataclass(frozen=True)
class StoredSignal:
    """What the intake's transaction did: the signal's id (the first one stored, for a
    duplicate), whether it was a duplicate (nothing written), how many deliveries it made."""

    signal_id: str
    duplicate: bool
    deliveries: int


class _Duplicate(Exception):
    def __init__(self, signal_id: str) -> None:
        self.signal_id = signal_id


def store_signal(conn: Any, provider: str, signal_id: str, aliases: Iterable[str], payload: Mapping[str, Any],
                 accounts: Mapping[str, Mapping[str, Any]], max_age: float, intake: str) -> StoredSignal:
    """In one transaction on `conn` (an autocommit connection): record the signal under every
    id in `aliases` (and `signal_id`), one `pending` delivery per account with its sizing, a
    NOTIFY per account's channel; commit. A signal any of whose ids is already recorded is a
    duplicate: nothing is written. Raises psycopg errors (nothing committed)."""
    ids = sorted({signal_id, *aliases})  # one order for every intake: two retries never deadlock
    keys = sorted(accounts)
    text = jsoncodec.dumps(dict(payload), "signal payload")
    sizing = [jsoncodec.dumps(dict(accounts[key]), "account sizing") for key in keys]
    try:
        with conn.transaction():
            for alias in ids:
                cursor = conn.execute("INSERT INTO fanout_signal_ids (provider, alias, signal_id) VALUES (%s, %s, %s) "
                                      "ON CONFLICT DO NOTHING", (provider, alias, signal_id))
                if cursor.rowcount == 0:
                    row = conn.execute("SELECT signal_id FROM fanout_signal_ids WHERE provider = %s AND alias = %s",
                                       (provider, alias)).fetchone()
                    raise _Duplicate(str(row[0]) if row else signal_id)
            conn.execute("INSERT INTO fanout_signals (provider, signal_id, payload, received_at, intake, deliveries) "
                         "VALUES (%s, %s, %s, now(), %s, %s)", (provider, signal_id, text, intake, len(keys)))
            conn.execute(
                "INSERT INTO fanout_deliveries (key_id, provider, signal_id, status, account, created_at, expires_at) "
                "SELECT k, %s, %s, 'pending', a, now(), now() + make_interval(secs => %s) "
                "FROM unnest(%s::text[], %s::text[]) AS t(k, a)", (provider, signal_id, max_age, keys, sizing))
            served = serving_order(keys, provider, signal_id)  # notified (so woken) in this order; a worker's
            # cells listen on one channel for all of them, the key as payload
            conn.execute("SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS t(c, p)",
                         ([channel(k) for k in served] + [WORKER_CHANNEL] * len(served), [""] * len(served) + served))
            crash_point("intake.before_commit")
    except _Duplicate as duplicate:
        return StoredSignal(duplicate.signal_id, True, 0)
    crash_point("intake.after_commit")
    return StoredSignal(signal_id, False, len(keys))


# ----------------------------------------------------------------------------- cell side


@dataclass(frozen=True)
class TakenDelivery:
    """A delivery moved into the key's signal inbox under `inbox_seq`, to be decided."""

    provider: str
    signal_id: str
    payload: dict[str, Any]  # the provider's payload with `account` (the key and its sizing)
    inbox_seq: int
    age: float  # seconds since the intake accepted the signal (the database's clock)


@dataclass(frozen=True)
class ExpiredDelivery:
    """A delivery not decided within its provider's max_age: marked `expired`, never traded."""

    provider: str
    signal_id: str
    age: float
    max_age: float
    taken: bool  # it had been taken into the inbox (then the engine stopped before deciding it)


class DeliveryClaimer:
    """One key's cell taking its delivery rows (every transaction fenced by `epoch` like the
    cell's other writes). `account_field`: the payload field that carries the account's key and
    sizing to the rules. `db`: the connection of the cell's state store (`PgStateStore.connection`,
    of the same key and epoch), shared rather than one more per key; left open by `close`. Without
    it the claimer has a connection of its own."""

    def __init__(self, settings: StoreSettings, epoch: int | None, *, account_field: str = "account",
                 account: Callable[[str, Mapping[str, Any]], dict[str, Any]] | None = None,
                 db: Connection | None = None) -> None:
        if db is not None and (db.settings.key_id != settings.key_id or db.epoch != epoch):
            raise ValueError("a claimer shares only a connection of its own key and epoch")
        self.settings = settings
        self.key_id = settings.key_id
        self.epoch = epoch
        self.account_field = account_field
        self._account = account or (lambda key, sizing: {"key": key, **sizing})
        self._owned = db is None
        self._db = Connection(settings, epoch) if db is None else db

    def claim(self, *, time: float, limit: int = CLAIM_BATCH,
              audit: Callable[[list[TakenDelivery], list[ExpiredDelivery]], None] | None = None
              ) -> tuple[list[TakenDelivery], list[ExpiredDelivery]]:
        """Take up to `limit` pending deliveries of the key, oldest first, skipping rows another
        consumer holds: each goes into the signal inbox (with `time` as its event time), or is
        expired when past its max_age. StateStoreError (FencedError) if the store refuses.
        `audit(taken, expired)` appends their records to the key's audit chain (it must not
        raise): right before the claim's COMMIT when the store commits the chain's records with
        its own (`PgStateStore.pair_audit`: one transaction, not two), else after it."""
        taken: list[TakenDelivery] = []
        expired: list[ExpiredDelivery] = []
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT d.provider, d.signal_id, d.account, s.payload, d.expires_at <= now(), "
                "extract(epoch FROM now() - s.received_at), extract(epoch FROM d.expires_at - s.received_at) "
                "FROM fanout_deliveries d JOIN fanout_signals s ON s.provider = d.provider "
                "AND s.signal_id = d.signal_id WHERE d.key_id = %s AND d.status = 'pending' "
                "ORDER BY d.created_at, d.signal_id LIMIT %s FOR UPDATE OF d SKIP LOCKED",
                (self.key_id, limit)).fetchall()
            for provider, signal_id, account, payload_text, late, age, max_age in rows:
                where = (self.key_id, provider, signal_id)
                if late:
                    conn.execute("UPDATE fanout_deliveries SET status = 'expired', done_at = now() "
                                 "WHERE key_id = %s AND provider = %s AND signal_id = %s", where)
                    expired.append(ExpiredDelivery(provider, signal_id, float(age), float(max_age), False))
                    continue
                payload = jsoncodec.loads(payload_text)
                payload[self.account_field] = self._account(self.key_id, jsoncodec.loads(account))
                seq = conn.execute(  # into the inbox and marked taken: one statement
                    "WITH inbox AS (INSERT INTO signal_inbox (key_id, source, signal_id, payload, time) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING seq) "
                    "UPDATE fanout_deliveries SET status = 'taken', taken_at = now(), taken_epoch = %s, "
                    "inbox_seq = (SELECT seq FROM inbox) WHERE key_id = %s AND provider = %s AND signal_id = %s "
                    "RETURNING inbox_seq",
                    (self.key_id, provider, signal_id, jsoncodec.dumps(payload, "signal payload"), time,
                     self.epoch or 0, *where)).fetchone()[0]
                taken.append(TakenDelivery(provider, signal_id, payload, int(seq), float(age)))
            later = None if audit is None or not (taken or expired) else functools.partial(audit, taken, expired)
            if later is not None and self._db.before_commit is not None:
                self._db.at_commit(later)
                later = None
        if later is not None:
            later()
        return taken, expired

    def expire_stale(self) -> list[ExpiredDelivery]:
        """Deliveries taken into the inbox but not decided (the engine stopped) whose max_age
        has passed since: out of the inbox and `expired`, so a late start does not trade them."""
        expired = []
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT d.provider, d.signal_id, d.inbox_seq, extract(epoch FROM now() - s.received_at), "
                "extract(epoch FROM d.expires_at - s.received_at) FROM fanout_deliveries d "
                "JOIN fanout_signals s ON s.provider = d.provider AND s.signal_id = d.signal_id "
                "WHERE d.key_id = %s AND d.status = 'taken' AND d.expires_at <= now() FOR UPDATE OF d",
                (self.key_id,)).fetchall()
            for provider, signal_id, seq, age, max_age in rows:
                deleted = conn.execute("DELETE FROM signal_inbox WHERE key_id = %s AND seq = %s RETURNING 1",
                                       (self.key_id, seq))
                if deleted.fetchone() is None:  # decided meanwhile (marked done by the same commit): leave it
                    continue
                conn.execute("UPDATE fanout_deliveries SET status = 'expired', done_at = now() "
                             "WHERE key_id = %s AND provider = %s AND signal_id = %s",
                             (self.key_id, provider, signal_id))
                expired.append(ExpiredDelivery(provider, signal_id, float(age), float(max_age), True))
        return expired

    def close(self) -> None:
        if self._owned:
            self._db.close()


def complete_deliveries(conn: Any, key_id: str, inbox_numbers: Sequence[int]) -> None:
    """Mark `done` the deliveries whose inbox rows the decision's commit is deleting (on the
    commit's own connection, inside its transaction)."""
    conn.execute("UPDATE fanout_deliveries SET status = 'done', done_at = now() "
                 "WHERE key_id = %s AND status = 'taken' AND inbox_seq = ANY(%s::bigint[])",
                 (key_id, int_array(inbox_numbers)))


def int_array(numbers: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (`'{1,2}'`, cast `::bigint[]` in the query): psycopg
    builds a new adapter context for each Python list it sends, a cost per statement on a hot path."""
    return "{" + ",".join(str(int(n)) for n in numbers) + "}"


def prune_signals(settings: StoreSettings, older_than: float) -> tuple[int, int]:
    """Delete the signals the intake accepted more than `older_than` seconds ago (the database's
    clock) whose deliveries are all final (done or expired), with their ids and deliveries, in
    one transaction: (signals, deliveries) deleted. A retry of a pruned signal is a new signal,
    so keep them longer than any provider retries (its timestamp window bounds HMAC replays)."""
    conn = connect(settings)
    try:
        with conn.transaction():
            rows = conn.execute(
                "DELETE FROM fanout_signals s WHERE s.received_at < now() - make_interval(secs => %s) "
                "AND NOT EXISTS (SELECT 1 FROM fanout_deliveries d WHERE d.provider = s.provider "
                "AND d.signal_id = s.signal_id AND d.status IN ('pending', 'taken')) "
                "RETURNING provider, signal_id", (older_than,)).fetchall()
            providers, ids = [r[0] for r in rows], [r[1] for r in rows]
            conn.execute("DELETE FROM fanout_signal_ids i USING unnest(%s::text[], %s::text[]) AS p(provider, id) "
                         "WHERE i.provider = p.provider AND i.signal_id = p.id", (providers, ids))
            deleted = conn.execute(
                "DELETE FROM fanout_deliveries d USING unnest(%s::text[], %s::text[]) AS p(provider, id) "
                "WHERE d.provider = p.provider AND d.signal_id = p.id", (providers, ids)).rowcount
    except StateStoreError:
        raise
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot prune: {_first_line(exc)}") from None
    finally:
        conn.close()
    return len(rows), deleted


# ----------------------------------------------------------------------------- cluster status


@dataclass(frozen=True)
class KeyOverview:
    """One key as `rules-engine cluster status` shows it (times in seconds, the database's clock)."""

    key_id: str
    holder: str | None
    epoch: int | None
    acquired_at: datetime | None
    lease_age: float | None  # since the lease was taken
    expires_in: float | None  # until the lease expires (negative: expired that long ago)
    pending: int  # deliveries not taken yet
    taken: int  # taken into the inbox, not decided yet
    done: int
    expired: int
    oldest_waiting: float | None  # age of the oldest pending or taken delivery
    lag_p50: float | None  # accepted by the intake -> decided, over the last hour
    lag_max: float | None


def cluster_overview(settings: StoreSettings) -> list[KeyOverview]:
    """Every key with a lease or deliveries, by key id (StateStoreError if the store cannot be read)."""
    conn = connect(settings)
    try:
        leases = {r[0]: r[1:] for r in conn.execute(
            "SELECT key_id, holder, epoch, acquired_at, extract(epoch FROM now() - acquired_at), "
            "extract(epoch FROM expires_at - now()) FROM key_lease").fetchall()}
        counts = {r[0]: r[1:] for r in conn.execute(
            "SELECT key_id, count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'taken'), "
            "count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'expired'), "
            "extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'taken'))), "
            "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY done_at - created_at) "
            "  FILTER (WHERE status = 'done' AND done_at > now() - interval '1 hour')), "
            "extract(epoch FROM max(done_at - created_at) FILTER (WHERE status = 'done' "
            "  AND done_at > now() - interval '1 hour')) "
            "FROM fanout_deliveries GROUP BY key_id").fetchall()}
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot read the cluster: {_first_line(exc)}") from None
    finally:
        conn.close()
    overview = []
    for key in sorted(leases.keys() | counts.keys()):
        lease = leases.get(key, (None, None, None, None, None))
        count = counts.get(key, (0, 0, 0, 0, None, None, None))
        overview.append(KeyOverview(
            key, lease[0], None if lease[1] is None else int(lease[1]), lease[2], _seconds(lease[3]),
            _seconds(lease[4]), int(count[0]), int(count[1]), int(count[2]), int(count[3]), _seconds(count[4]),
            _seconds(count[5]), _seconds(count[6])))
    return overview


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)
