"""A lease given up on purpose (`release_after`, `service.release`), and its hold-off.

    release_lease(settings, holder, epoch, hold_off=30.0, reason="...")   # False: not ours any more
    released_hold_off(settings, holder)    # seconds this holder must still leave the key alone

In one transaction the holder lets its lease expire now (a standby takes the key at its next
poll; the holder's own renewals stop matching the row) and records under the key's
`cell_meta` row `released` who released it, why, and until when (the database's clock) that
holder keeps off the key. A holder is a host and a process
(`service.backend.holder_name`): a worker's cell that stands by again after the release finds
its own name there and does not take the key back before the hold-off ends.
"""

from __future__ import annotations

from typing import Any

from rules_engine import jsoncodec
from rules_engine.pgstore.connection import StoreSettings, _first_line, connect
from rules_engine.state.store import StateStoreError

META_KEY = "released"
RELEASED = " (released)"
"""Added to the holder's name in the lease row: its renewals no longer match, so it cannot
extend the lease it gave up (its epoch's writes still pass until another engine takes the key)."""


def release_lease(settings: StoreSettings, holder: str, epoch: int, *, hold_off: float, reason: str) -> bool:
    """Release the key's lease if `holder` still holds it with `epoch`, recording the hold-off
    (see the module). False if it does not (nothing changed). StateStoreError if the store
    cannot be reached."""
    try:
        conn = connect(settings)
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot release the key's lease: {_first_line(exc)}") \
            from None
    try:
        with conn.transaction():
            row = conn.execute("UPDATE key_lease SET expires_at = now(), holder = %s WHERE key_id = %s "
                               "AND epoch = %s AND holder = %s RETURNING extract(epoch FROM now())",
                               (holder + RELEASED, settings.key_id, epoch, holder)).fetchone()
            if row is None:
                return False
            note = {"holder": holder, "epoch": epoch, "at": float(row[0]), "until": float(row[0]) + hold_off,
                    "reason": reason}
            conn.execute("INSERT INTO cell_meta (key_id, key, value) VALUES (%s, %s, %s) "
                         "ON CONFLICT (key_id, key) DO UPDATE SET value = excluded.value",
                         (settings.key_id, META_KEY, jsoncodec.dumps(note, "release")))
        return True
    except StateStoreError:
        raise
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot release the key's lease: {_first_line(exc)}") \
            from None
    finally:
        conn.close()


def released_hold_off(settings: StoreSettings, holder: str) -> float:
    """Seconds (the database's clock) before `holder` may take the key again after releasing
    it; 0 if it never did or the hold-off is over. StateStoreError if the store cannot be read."""
    try:
        conn = connect(settings)
        try:
            row = conn.execute("SELECT value, extract(epoch FROM now()) FROM cell_meta WHERE key_id = %s AND key = %s",
                               (settings.key_id, META_KEY)).fetchone()
        finally:
            conn.close()
    except Exception as exc:
        raise StateStoreError(f"state store {settings.shown}: cannot read the key's release: {_first_line(exc)}") \
            from None
    if row is None:
        return 0.0
    note: dict[str, Any] = dict(jsoncodec.loads(str(row[0])))
    if note.get("holder") != holder:
        return 0.0
    return max(0.0, float(note.get("until", 0.0)) - float(row[1]))
