"""Nonces that strictly increase per API key across threads and restarts.

Kraken rejects a private call whose nonce is not above the last one it accepted for the
key (`EAPI:Invalid nonce`), and too many of those lock the key out. So:

- `NonceSource.issue(key)` hands out `max(last + 1, now)` (now in `unit_ns` ticks of the
  wall clock) in the key's turn, held until the caller leaves the `with` block. The
  clients sign, send and read the answer inside it (`turn`: on the caller's own thread;
  the next caller takes over `grace` seconds after the request was handed to the
  transport), so Kraken receives one key's nonces in the order they were issued, whatever
  the number of threads.
- A high-water mark is persisted through a `NonceStore`, so a restart (even with the
  clock stepped back) continues above every nonce already sent. To avoid a disk write
  per call the source reserves a lease ahead (`lease` ticks) and writes only when the
  lease is used up; after a restart it starts above the reservation. A service renews the
  lease ahead of time (`keep_ahead`, off the order path), so an order does not wait for that
  write.

One process should own a key: two processes sharing a key do not share the lock.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol


class NonceStore(Protocol):
    """Persists the highest nonce reserved for each key (by key fingerprint)."""

    def load(self, key_fingerprint: str) -> int:
        """The stored high-water mark, 0 if none."""
        ...

    def save(self, key_fingerprint: str, value: int) -> None:
        """Durably record `value` (never lower than a previous save)."""
        ...


class MemoryNonceStore:
    """A NonceStore for one process lifetime (tests, or when the clock alone suffices)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self, key_fingerprint: str) -> int:
        with self._lock:
            return self._values.get(key_fingerprint, 0)

    def save(self, key_fingerprint: str, value: int) -> None:
        with self._lock:
            self._values[key_fingerprint] = max(value, self._values.get(key_fingerprint, 0))


_PATH_LOCKS: dict[Path, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: Path) -> threading.Lock:
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(path, threading.Lock())


class FileNonceStore:
    """High-water marks in a small JSON file `{fingerprint: nonce}`, replaced atomically.

    A save writes a temporary file in the same folder, fsyncs it and renames it over the
    old one, so a crash leaves either the old or the new file, never a torn one.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).resolve()
        self._lock = _path_lock(self.path)

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"nonce store {self.path} is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise RuntimeError(f"nonce store {self.path} is not a JSON object")
        return {str(k): int(v) for k, v in data.items()}

    def load(self, key_fingerprint: str) -> int:
        with self._lock:
            return self._read().get(key_fingerprint, 0)

    def save(self, key_fingerprint: str, value: int) -> None:
        with self._lock:
            data = self._read()
            data[key_fingerprint] = max(value, data.get(key_fingerprint, 0))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(data, handle, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


class _SendSlot:
    """Whose turn it is to sign and send with one key. Taken before a nonce is issued, given
    back when the caller's block ends; or taken over by the next caller `grace` seconds after
    the holder handed its request to the transport (by then the request has left, so a slow
    answer does not hold up the key's other calls). Any thread may take it over: unlike a
    lock it has no owner, and a holder's late give-back does not free a later holder's turn."""

    __slots__ = ("_cond", "_number", "_busy", "_handed_at", "_grace")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._number = 0
        self._busy = False
        self._handed_at: float | None = None
        self._grace = 0.0

    def take(self) -> int:
        with self._cond:
            while self._busy:
                handed = self._handed_at
                if handed is None:
                    self._cond.wait()
                    continue
                left = handed + self._grace - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._number += 1
            self._busy, self._handed_at = True, None
            return self._number

    def handed(self, number: int, grace: float) -> None:
        with self._cond:
            if number == self._number and self._busy:
                self._handed_at, self._grace = time.monotonic(), grace
                self._cond.notify_all()  # waiters now wait at most `grace`

    def give_back(self, number: int) -> None:
        with self._cond:
            if number == self._number:
                self._busy, self._handed_at = False, None
                self._cond.notify()


class Turn:
    """A caller's turn to send with a key (`NonceSource.turn`): its nonce, and `handed()`,
    called right before the signed request goes to the transport."""

    __slots__ = ("nonce", "_slot", "_number", "_grace")

    def __init__(self, nonce: int, slot: _SendSlot, number: int, grace: float) -> None:
        self.nonce = nonce
        self._slot = slot
        self._number = number
        self._grace = grace

    def handed(self) -> None:
        """The request is on its way: the key's next caller waits at most `grace` more seconds."""
        self._slot.handed(self._number, self._grace)


class _KeyState:
    __slots__ = ("lock", "slot", "last", "reserved")

    def __init__(self, reserved: int):
        self.lock = threading.RLock()  # the nonce arithmetic
        self.slot = _SendSlot()  # whose turn it is to send
        self.last = reserved
        self.reserved = reserved


class NonceSource:
    """Per-key strictly increasing nonces with a persisted high-water mark.

    `unit_ns` sets the nonce scale (1 = nanoseconds, Spot's default; 1_000_000 =
    milliseconds, as Kraken suggests for Futures). Never change the scale of a key
    downwards: Kraken would reject every nonce until the clock caught up.
    """

    def __init__(
        self,
        store: NonceStore | None = None,
        *,
        unit_ns: int = 1,
        lease: int | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ):
        self.store: NonceStore = store if store is not None else MemoryNonceStore()
        self.unit_ns = unit_ns
        self.lease = (1_000_000_000 // unit_ns) if lease is None else lease
        self._clock_ns = clock_ns
        self._keys: dict[str, _KeyState] = {}
        self._guard = threading.Lock()

    def _state(self, key_fingerprint: str) -> _KeyState:
        with self._guard:
            state = self._keys.get(key_fingerprint)
            if state is None:
                state = self._keys[key_fingerprint] = _KeyState(self.store.load(key_fingerprint))
            return state

    def next(self, key_fingerprint: str) -> int:
        """A nonce above every one issued (or reserved) for this key before."""
        state = self._state(key_fingerprint)
        with state.lock:
            nonce = max(state.last + 1, self._clock_ns() // self.unit_ns)
            if nonce > state.reserved:
                reserved = nonce + self.lease
                self.store.save(key_fingerprint, reserved)
                state.reserved = reserved
            state.last = nonce
            return nonce

    def running_low(self) -> bool:
        """Whether `keep_ahead` would renew a reservation now. Read without the locks (cheap
        enough for an event loop; `last` and `reserved` only go up): a value read as it moves
        at most delays a renewal to the next call, and `next` still renews on its own."""
        floor = self._clock_ns() // self.unit_ns
        half = self.lease // 2
        return any(state.reserved - max(state.last, floor) < half for state in list(self._keys.values()))

    def keep_ahead(self) -> int:
        """Renew the reservation of every key with less than half a lease left ahead of the
        clock (and of its last nonce), so that `next` does not write the store on an order's
        way: a service calls this now and then, off that path. Returns how many keys were
        renewed. The store is written outside the key's lock (its value only goes up)."""
        with self._guard:
            keys = list(self._keys.items())
        renewed = 0
        for key_fingerprint, state in keys:
            with state.lock:
                floor = max(state.last, self._clock_ns() // self.unit_ns)
                if state.reserved - floor >= self.lease // 2:
                    continue
                reserved = floor + self.lease
            self.store.save(key_fingerprint, reserved)
            with state.lock:
                state.reserved = max(state.reserved, reserved)
            renewed += 1
        return renewed

    @contextmanager
    def issue(self, key_fingerprint: str) -> Iterator[int]:
        """Hold the key's turn for the whole block and yield a fresh nonce.

        Sign and send inside the block so that requests leave in nonce order.
        """
        with self.turn(key_fingerprint, grace=0.0) as turn:
            yield turn.nonce

    @contextmanager
    def turn(self, key_fingerprint: str, grace: float) -> Iterator[Turn]:
        """As `issue`, for a caller that sends on its own thread inside the block: it calls
        `Turn.handed()` right before the request goes to the transport, and the key's next
        caller then waits until the block ends or `grace` seconds more, whichever is first."""
        slot = self._state(key_fingerprint).slot
        number = slot.take()
        try:
            yield Turn(self.next(key_fingerprint), slot, number, grace)
        finally:
            slot.give_back(number)


_SHARED: dict[int, NonceSource] = {}
_SHARED_GUARD = threading.Lock()


def shared_nonce_source(unit_ns: int = 1) -> NonceSource:
    """The process-wide in-memory source for a nonce scale (the clients' default).

    Sharing it means two clients built for the same key still issue one increasing
    sequence under one lock. Pass `NonceSource(FileNonceStore(path))` to survive restarts
    with the clock stepped back.
    """
    with _SHARED_GUARD:
        source = _SHARED.get(unit_ns)
        if source is None:
            source = _SHARED[unit_ns] = NonceSource(unit_ns=unit_ns)
        return source
