"""One API key, one engine: nonce conflicts and a per-key lease on this machine.

Kraken refuses a private call whose nonce is not above the key's last one
(`EAPI:Invalid nonce`), before doing anything with it. One engine never sends its nonces out
of order (`kraken.nonce`), so a refusal means another client used the key in between: the
call is repeated once with a fresh nonce (an AddOrder only after the lookup by `cl_ord_id`
proved it absent, `kraken.placement`). `NonceConflicts` counts the refusals of each key in
this process; from `CONFLICT_THRESHOLD` within `CONFLICT_WINDOW` seconds the key is
considered shared: calls raise `KeyInUse` ("another client is using this API key") and
`key_problems()` (the service's `/healthz` `problems`) says so, until the window has passed
without a refusal.

`KeyLease` keeps two engines on one machine from using one key even with different state
dirs: an exclusive `flock` on a file named by the key's fingerprint in a per-user runtime
folder (`$XDG_RUNTIME_DIR/rules-engine`, else `/tmp/rules-engine-<uid>`; override with
`RULES_ENGINE_RUNTIME_DIR`), held while the engine runs and released by the kernel when the
process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

CONFLICT_THRESHOLD = 3
CONFLICT_WINDOW = 60.0


class NonceConflicts:
    """The `EAPI:Invalid nonce` refusals of one key (thread-safe)."""

    def __init__(self, fingerprint: str, clock: Callable[[], float] = time.time) -> None:
        self.fingerprint = fingerprint
        self._clock = clock
        self._times: deque[float] = deque(maxlen=CONFLICT_THRESHOLD)
        self._lock = threading.Lock()

    def note(self) -> bool:
        """Count a refusal; whether the key now counts as shared."""
        with self._lock:
            self._times.append(self._clock())
        return self.shared

    @property
    def shared(self) -> bool:
        with self._lock:
            times = self._times
            return len(times) == CONFLICT_THRESHOLD and self._clock() - times[0] <= CONFLICT_WINDOW \
                and self._clock() - times[-1] <= CONFLICT_WINDOW

    def problem(self) -> str | None:
        if not self.shared:
            return None
        return (f"another client is using API key {self.fingerprint}: Kraken refused {CONFLICT_THRESHOLD} "
                f"nonces within {CONFLICT_WINDOW:g} s (EAPI:Invalid nonce); give each engine its own key")


_CONFLICTS: dict[str, NonceConflicts] = {}
_GUARD = threading.Lock()


def nonce_conflicts(fingerprint: str, clock: Callable[[], float] = time.time) -> NonceConflicts:
    """The process-wide tracker of one key (shared by every client of the key)."""
    with _GUARD:
        tracker = _CONFLICTS.get(fingerprint)
        if tracker is None:
            tracker = _CONFLICTS[fingerprint] = NonceConflicts(fingerprint, clock)
        return tracker


def forget_conflicts(fingerprint: str) -> None:
    """Drop what was counted for a key (the operator gave the other client its own key)."""
    with _GUARD:
        _CONFLICTS.pop(fingerprint, None)


def key_problems() -> list[str]:
    """What is wrong with the keys this process uses (for `/healthz`)."""
    with _GUARD:
        trackers = list(_CONFLICTS.values())
    return [p for p in (t.problem() for t in trackers) if p]


class KeyInUseHere(OSError):
    """Another engine on this machine holds the key's lease."""


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("RULES_ENGINE_RUNTIME_DIR"):
        return Path(env["RULES_ENGINE_RUNTIME_DIR"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "rules-engine"
    return Path(f"/tmp/rules-engine-{os.getuid()}")


class KeyLease:
    """An exclusive lease on one API key on this machine (see the module docstring)."""

    def __init__(self, fingerprint: str, holder: str, environ: Mapping[str, str] | None = None) -> None:
        folder = runtime_dir(environ)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / f"key-{fingerprint}.lock"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise KeyInUseHere(f"another rules-engine on this machine is using API key {fingerprint} ({other}); "
                               "give each engine its own key, or stop the other one") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the key up (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
