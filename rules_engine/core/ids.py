"""Deterministic identifiers for decisions and the orders they place.

A decision is one firing of one rule: `decision_id = "<rule_id>#<fire_seq>"`, where the fire
sequence number is persistent (kept in the snapshot, and kept after the rule is removed), so
a new decision never reuses a number. The client order id of the order placed by action
`action_index` of that decision is a UUID5 of the three, so a retry, a reconnect or a restart
derives the same id for the same decision, and Kraken refuses a second order with it.

The service passes its **installation id** (32 random hex digits, made with the state
directory: `StateStore.installation_id`): the UUID5 is then taken in a namespace of that id
and its first 8 hex digits are the installation id's first 8, so a fresh state dir (whose
fire numbers start again at 1) never reproduces an id an earlier one sent, and an order is
recognisably this installation's. Replay and rule tests pass none (their ids only need to be
reproducible). On the PostgreSQL store the installation id is the database's combined with the
key cell's store key (`cell_installation`), so the same rule's first fire gives a different id
on every key. Kraken Spot accepts a long UUID as `cl_ord_id`; Futures accepts up to 100
characters as `cliOrdId`.
"""

from __future__ import annotations

import functools
import hashlib
import uuid

ORDER_ID_NAMESPACE = uuid.UUID("6f3c7c1e-5a0b-5d0e-9b59-2b4f0d6a1c37")
_NAMESPACE_BYTES = ORDER_ID_NAMESPACE.bytes


def decision_id(rule_id: str, fire_seq: int) -> str:
    return f"{rule_id}#{fire_seq}"


def intent_id(rule_id: str, fire_seq: int, action_index: int, suffix: str = "") -> str:
    """`rule#seq/action` (plus `/suffix` for a helper intent such as a balance read)."""
    base = f"{decision_id(rule_id, fire_seq)}/{action_index}"
    return f"{base}/{suffix}" if suffix else base


def client_order_id(rule_id: str, fire_seq: int, action_index: int, installation: str = "") -> str:
    """The UUID5 (36-character form) for this decision's order at `action_index`, in the
    namespace of `installation` (32 hex digits) if given, which then leads the id."""
    name = f"{rule_id}\x1f{fire_seq}\x1f{action_index}"
    if not installation:
        return _uuid5(_NAMESPACE_BYTES, name)
    return installation[:8].lower() + _uuid5(_namespace(installation), name)[8:]


@functools.lru_cache(maxsize=64)
def _namespace(installation: str) -> bytes:
    """The UUID namespace of an installation id (32 hex digits), as bytes."""
    return uuid.UUID(hex=installation).bytes


def cell_installation(installation: str, key: str) -> str:
    """The installation id of one key cell of a shared store: the installation's first 8 hex
    digits (its tag, as `installation_tag` reads it) and 24 of a digest of it with `key`."""
    digest = hashlib.sha256(f"{installation.lower()}\x1f{key}".encode()).hexdigest()
    return installation[:8].lower() + digest[:24]


def installation_tag(cl_ord_id: str) -> str:
    """The installation tag an id made with an installation id starts with (8 hex digits)."""
    return cl_ord_id[:8].lower()


def _uuid5(namespace: bytes, name: str) -> str:
    """`str(uuid.uuid5(UUID(bytes=namespace), name))` without the UUID object (a fire's hot path)."""
    raw = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
