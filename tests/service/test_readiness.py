"""Readiness problems set and cleared by any part, checks that follow time, and the audit tap
that turns failed audit writes into a problem and back."""

from __future__ import annotations

from typing import Any

import pytest

from rules_engine.audit import AuditError
from rules_engine.audit.sink import MemoryAudit
from rules_engine.service.audit_tap import AuditTap
from rules_engine.service.readiness import Readiness


def test_problems_set_and_cleared_decide_the_report() -> None:
    now = [100.0]
    readiness = Readiness(clock=lambda: now[0])
    changes: list[tuple[str, bool]] = []
    readiness.on_change.append(lambda problem, raised: changes.append((problem.name, raised)))
    assert readiness.report() == {"ready": True, "status": "ready", "problems": []}
    readiness.set("reload_failed", "rules.yaml:3:1: bad", severity="degraded")
    assert readiness.report()["status"] == "degraded" and readiness.report()["ready"] is True
    readiness.set("audit_unwritable", "disk full")
    now[0] = 105.0
    readiness.set("audit_unwritable", "disk still full")  # again: reason updated, since kept
    report = readiness.report()
    assert report["status"] == "not_ready" and report["ready"] is False
    assert report["problems"][0] == {"name": "audit_unwritable", "reason": "disk still full",
                                     "severity": "not_ready", "since": 100.0}
    readiness.clear("audit_unwritable")
    readiness.clear("audit_unwritable")
    assert readiness.report()["status"] == "degraded"
    assert changes == [("reload_failed", True), ("audit_unwritable", True), ("audit_unwritable", False)]


def test_checks_are_asked_on_each_report_and_a_failing_check_counts_as_a_problem() -> None:
    now = [0.0]
    readiness = Readiness(clock=lambda: now[0])
    changes: list[tuple[str, bool]] = []
    readiness.on_change.append(lambda problem, raised: changes.append((problem.name, raised)))
    stale: list[str | None] = ["spot feed silent"]
    readiness.add_check("feed_stale", lambda: stale[0])
    assert readiness.report()["problems"][0]["reason"] == "spot feed silent"
    assert readiness.report()["problems"][0]["since"] == 0.0  # asked again at the same time: one change
    now[0] = 3.0
    assert readiness.report()["problems"][0]["since"] == 0.0
    stale[0] = None
    assert readiness.report()["ready"] is True
    assert changes == [("feed_stale", True), ("feed_stale", False)]

    def broken() -> str | None:
        raise RuntimeError("boom")

    readiness.add_check("broken", broken)
    assert "readiness check failed: RuntimeError: boom" in readiness.report()["problems"][0]["reason"]


class FlakyAudit(MemoryAudit):
    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def append_many(self, entries: Any) -> list[dict[str, Any]]:
        if self.broken:
            raise AuditError("could not write to audit log: No space left on device")
        return super().append_many(entries)


def test_audit_tap_reports_failed_writes_and_the_first_good_one_after() -> None:
    inner = FlakyAudit()
    seen: list[list[dict[str, Any]]] = []
    health: list[str | None] = []
    tap = AuditTap(inner, [seen.append], on_health=health.append)
    tap.append("signal", data={"source": "x"})
    assert seen[0][0]["kind"] == "signal" and health == []
    inner.broken = True
    with pytest.raises(AuditError):
        tap.append_many([("trigger", "r", None, {})])
    assert tap.failing is not None and health == ["could not write to audit log: No space left on device"]
    inner.broken = False
    tap.append("signal", data={})
    assert tap.failing is None and health[-1] is None and len(seen) == 2


def test_audit_tap_shows_the_log_file_and_head_it_stands_in_front_of(tmp_path) -> None:
    """The dispatcher finds audited answers (`path`) and saves power-cut checkpoints (`head`)
    through the tap; without them both would silently be skipped."""
    from rules_engine.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl", mode="dry-run")
    tap = AuditTap(log)
    tap.append("startup", data={}, sync=True)
    assert tap.path == log.path and tap.head == log.head and tap.head[0] >= 1
    assert AuditTap(MemoryAudit()).path is None
    log.close()
