"""Pinning the engine process to one CPU (the config's `cpu`), as `taskset -c N` would.

The engine's Python work is serial (one interpreter lock), so one CPU takes all of it; what
pinning changes is where that work runs: the event loop and the dispatch lanes hand each
decision from thread to thread, and on one CPU a lane thread wakes where the loop just ran,
with the decision's objects still in that CPU's caches, instead of being woken on another CPU
and reading them cold. Measured by `python -m bench.engine_service` (tick -> signed AddOrder):
see docs/modes-and-execution.md, "Pinning the engine to one CPU".

Every thread the process has is pinned (Linux takes a thread id where a process id is
expected), and threads started later inherit it from the thread that starts them.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class AffinityError(Exception):
    """The process cannot be pinned to the CPU asked for."""


def pin_process(cpu: int) -> set[int]:
    """Run every thread of this process on `cpu` only; returns the CPUs it could use before.
    Raises AffinityError (nothing changed) if that CPU is not one this process may use, or
    the platform cannot pin."""
    if not hasattr(os, "sched_setaffinity"):
        raise AffinityError("cpu: pinning to a CPU needs Linux (sched_setaffinity)")
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise AffinityError(f"cpu: CPU {cpu} is not available to this process (it may use {_ranges(allowed)})")
    set_process_affinity({cpu})
    log.info("pinned to CPU %d (config: cpu)", cpu)
    return allowed


def set_process_affinity(cpus: set[int]) -> None:
    """Let every thread of this process run on `cpus` (`pin_process`; or back to what it
    returned)."""
    for tid in _threads():
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


def _threads() -> list[int]:
    """The ids of this process's threads (0, the calling thread, if they cannot be listed)."""
    try:
        return [int(name) for name in os.listdir(f"/proc/{os.getpid()}/task")]
    except OSError:
        return [0]


def _ranges(cpus: set[int]) -> str:
    """`{0, 1, 2, 5}` -> `0-2,5`."""
    out: list[str] = []
    for cpu in sorted(cpus):
        if out and out[-1].split("-")[-1] == str(cpu - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return ",".join(out)
