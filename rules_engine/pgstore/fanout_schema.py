"""The tables of signal fan-out (`pgstore.fanout`), applied by `connection.ensure_schema`
whenever they are missing (so a store made before fan-out existed gets them too)."""

from __future__ import annotations

from typing import Any

FANOUT_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS fanout_signals (
        provider TEXT NOT NULL, signal_id TEXT NOT NULL, payload TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL, intake TEXT NOT NULL, deliveries INTEGER NOT NULL,
        PRIMARY KEY (provider, signal_id))""",
    """CREATE TABLE IF NOT EXISTS fanout_signal_ids (
        provider TEXT NOT NULL, alias TEXT NOT NULL, signal_id TEXT NOT NULL, PRIMARY KEY (provider, alias))""",
    """CREATE TABLE IF NOT EXISTS fanout_deliveries (
        key_id TEXT NOT NULL, provider TEXT NOT NULL, signal_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'taken', 'done', 'expired')),
        account TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL,
        taken_at TIMESTAMPTZ, taken_epoch BIGINT, inbox_seq BIGINT, done_at TIMESTAMPTZ,
        PRIMARY KEY (key_id, provider, signal_id))""",
    "CREATE INDEX IF NOT EXISTS fanout_deliveries_pending ON fanout_deliveries (key_id, created_at) "
    "WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS fanout_deliveries_taken ON fanout_deliveries (key_id, inbox_seq) "
    "WHERE status = 'taken'",
)
"""Each IF NOT EXISTS: concurrent starters and an existing store are both fine."""


def apply_fanout_schema(conn: Any) -> None:
    """Create the fan-out tables if they are missing (inside the caller's schema transaction)."""
    if conn.execute("SELECT to_regclass('fanout_deliveries') IS NULL").fetchone()[0]:
        for statement in FANOUT_SCHEMA:
            conn.execute(statement)
