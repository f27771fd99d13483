"""Deterministic identifiers in Kraken's shapes.

Order txids look like `OQCLML-BW3P3-BUCMWZ` and trade ids like `TCCCTY-WE2O6-P3NB37`
(6-5-6 upper-case characters); futures order ids are UUIDs. Each id is derived from the
seed and a counter, so a seeded run is reproducible and the state is one integer.
"""

from __future__ import annotations

import base64
import hashlib
import uuid


class IdSource:
    def __init__(self, seed: int | str = 0, counter: int = 0):
        self.seed = seed
        self.counter = counter

    def _digest(self, kind: str) -> bytes:
        self.counter += 1
        return hashlib.sha256(f"{self.seed}:{kind}:{self.counter}".encode()).digest()

    def _kraken(self, prefix: str) -> str:
        # 10 bytes make exactly 16 base32 characters (the first 16 of the whole digest's)
        chars = prefix + base64.b32encode(self._digest(prefix)[:10]).decode()
        return f"{chars[:6]}-{chars[6:11]}-{chars[11:17]}"

    def txid(self) -> str:
        """A spot order id, `OXXXXX-XXXXX-XXXXXX`."""
        return self._kraken("O")

    def trade_id(self) -> str:
        """A spot trade id, `TXXXXX-XXXXX-XXXXXX`."""
        return self._kraken("T")

    def uuid(self) -> str:
        """A futures order id (UUID version 4 layout)."""
        return str(uuid.UUID(bytes=self._digest("U")[:16], version=4))

    def token(self) -> str:
        """An opaque WebSocket token (43 base64 characters, like Kraken's)."""
        return base64.b64encode(self._digest("W")).decode().rstrip("=")[:43]
