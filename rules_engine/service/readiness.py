"""Readiness: whether the engine can trade now, and if not, why.

Any part of the service names a problem when it sees one and clears it when it goes away:

    readiness.set("audit_unwritable", "could not write to audit log ...: No space left on device")
    readiness.clear("audit_unwritable")
    readiness.set("reload_failed", "rules/btc.yaml:12:7: ...", severity="degraded")

Checks (`add_check(name, fn)`) are asked on every report: `fn()` returns a reason (the problem
holds) or None; feed staleness and "balances not known yet" are checks, as they follow time.

A `not_ready` problem makes `/readyz` answer 503 (do not trade on this engine); a `degraded`
one keeps it at 200 with the list (it trades, but someone should look). Both are listed with
the time they began. Thread-safe: the dispatch thread sets problems too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("rules_engine.readiness")

Severity = Literal["not_ready", "degraded"]
Check = Callable[[], "str | None"]


@dataclass(frozen=True)
class Problem:
    name: str
    reason: str
    severity: Severity
    since: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "severity": self.severity, "since": self.since}


class Readiness:
    """Named problems, set and cleared by any part, plus checks asked on each report."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._problems: dict[str, Problem] = {}
        self._checks: dict[str, tuple[Check, Severity]] = {}
        self._check_since: dict[str, float] = {}
        self._quiet: set[str] = set()  # set with announce=False: their clearing is not announced either
        self._lock = threading.Lock()
        self.on_change: list[Callable[[Problem, bool], None]] = []  # (problem, raised) for each change

    def set(self, name: str, reason: str, severity: Severity = "not_ready", announce: bool = True) -> None:
        """Name a problem (again: the reason is updated, `since` kept); `announce=False` for
        a problem that is expected (before start-up), neither logged nor told to listeners."""
        with self._lock:
            old = self._problems.get(name)
            problem = Problem(name, reason, severity, old.since if old else self._clock())
            self._problems[name] = problem
            if old is None and not announce:
                self._quiet.add(name)
        if old is None and announce:
            self._changed(problem, True)

    def clear(self, name: str) -> None:
        with self._lock:
            problem = self._problems.pop(name, None)
            quiet = name in self._quiet
            self._quiet.discard(name)
        if problem is not None and not quiet:
            self._changed(problem, False)

    def add_check(self, name: str, check: Check, severity: Severity = "not_ready") -> None:
        """A problem that holds while `check()` returns a reason."""
        self._checks[name] = (check, severity)

    def problems(self) -> list[Problem]:
        """Every problem now, not_ready first, then by name."""
        now = self._clock()
        found: list[Problem] = []
        for name, (check, severity) in list(self._checks.items()):
            try:
                reason = check()
            except Exception as exc:  # a broken check is itself a reason not to trust the engine
                reason = f"readiness check failed: {type(exc).__name__}: {exc}"
            began = False
            with self._lock:
                since = self._check_since.get(name)
                if reason is None:
                    self._check_since.pop(name, None)
                elif since is None:
                    since = self._check_since[name] = now
                    began = True
            if reason is not None:
                assert since is not None
                problem = Problem(name, reason, severity, since)
                found.append(problem)
                if began:
                    self._changed(problem, True)
            elif since is not None:
                self._changed(Problem(name, "", severity, since), False)
        with self._lock:
            found.extend(self._problems.values())
        return sorted(found, key=lambda p: (p.severity != "not_ready", p.name))

    def report(self) -> dict[str, Any]:
        """The `/readyz` body: `ready` (no not_ready problem), `status` (ready / degraded /
        not_ready) and `problems`."""
        problems = self.problems()
        if any(p.severity == "not_ready" for p in problems):
            status = "not_ready"
        else:
            status = "degraded" if problems else "ready"
        return {"ready": status != "not_ready", "status": status, "problems": [p.to_json() for p in problems]}

    def _changed(self, problem: Problem, raised: bool) -> None:
        if raised:
            log.warning("readiness: %s (%s): %s", problem.name, problem.severity, problem.reason)
        else:
            log.info("readiness: %s cleared", problem.name)
        for listener in self.on_change:
            try:
                listener(problem, raised)
            except Exception:
                log.exception("readiness listener failed")
