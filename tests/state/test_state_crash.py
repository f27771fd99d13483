"""kill -9 at arbitrary points: nothing acknowledged is lost, nothing is decided or sent
twice, the audit chain stays intact, and a restart reconciles what was in flight."""

import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from rules_engine.audit import verify
from rules_engine.state import StateStore, audit_log_path, database_path

CHILD = Path(__file__).with_name("state_crash_child.py")
SECRET = "crash-test-secret-Zm9vYmFy+/=="
FINGERPRINT = "0123456789ab"


def run_child(state_dir: Path, total: int, kill_after: int | None) -> tuple[int, list[int], bool]:
    """Start the child; SIGKILL it once it has acknowledged `kill_after` decisions (None:
    let it finish). Returns (start index, acknowledged decisions, finished)."""
    env = {**os.environ, "CRASH_TEST_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(state_dir), str(total)], stdout=subprocess.PIPE, env=env, text=True
    )
    acked: list[int] = []
    start = -1
    finished = False
    try:
        for line in proc.stdout:
            word, *rest = line.split()
            if word == "start":
                start = int(rest[0])
            elif word == "decided":
                acked.append(int(rest[0]))
            elif word == "done":
                finished = True
            if kill_after is not None and start >= 0 and len(acked) >= kill_after:
                proc.kill()
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    return start, acked, finished


def audit_decisions(state_dir: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in audit_log_path(state_dir).read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "decision":
            counts[record["data"]["cl_ord_id"]] += 1
    return counts


def check_invariants(state_dir: Path, acked: set[int], previous_nonce: int) -> int:
    report = verify(audit_log_path(state_dir))
    assert report.ok, report.summary()
    decided = audit_decisions(state_dir)
    assert all(count == 1 for count in decided.values()), "a decision was audited twice (re-fired)"
    sent = (state_dir / "exchange.log").read_text().split() if (state_dir / "exchange.log").exists() else []
    assert len(sent) == len(set(sent)), "an order was sent twice"
    assert set(sent) <= set(decided), "an order left before its decision record was durable"
    with StateStore(database_path(state_dir)) as store:
        upto = (store.load_engine_snapshot() or {"next": 0})["next"]
        for n in acked:
            assert n < upto and store.get_decision(f"ord-{n}") is not None, f"acknowledged decision {n} lost"
        assert all(store.get_decision(f"ord-{n}") is not None for n in range(upto))
        assert store.get_decision(f"ord-{upto}") is None, "a decision exists beyond the snapshot"
        unresolved = store.unresolved_decisions()
        assert [d.cl_ord_id for d in unresolved] in ([], [f"ord-{upto - 1}"])
        for cl_ord_id in sent:
            assert store.get_decision(cl_ord_id).status in ("sent", "accepted")
        nonce = store.load(FINGERPRINT)
    assert nonce >= previous_nonce
    for name in os.listdir(state_dir):
        assert SECRET.encode() not in (state_dir / name).read_bytes(), f"the secret reached {name}"
    return nonce


def test_kill_minus_nine_at_arbitrary_points_then_restart(tmp_path):
    rng = random.Random(20240501)
    kill_points = [0, 1] + [rng.randint(2, 20) for _ in range(5)]
    acked: set[int] = set()
    nonce = 0
    expected_start = 0
    for kill_after in kill_points:
        start, new_acks, finished = run_child(tmp_path, total=10_000, kill_after=kill_after)
        assert not finished and start >= expected_start
        acked.update(new_acks)
        nonce = check_invariants(tmp_path, acked, nonce)
        with StateStore(database_path(tmp_path)) as store:
            expected_start = store.load_engine_snapshot()["next"] if store.load_engine_snapshot() else 0
    start, new_acks, finished = run_child(tmp_path, total=expected_start + 5, kill_after=None)
    assert finished and start == expected_start and new_acks == list(range(start, start + 5))
    acked.update(new_acks)
    check_invariants(tmp_path, acked, nonce)
    with StateStore(database_path(tmp_path)) as store:
        assert store.unresolved_decisions() == []
        statuses = collections.Counter(store.get_decision(f"ord-{n}").status for n in range(start + 5))
    assert set(statuses) <= {"accepted", "abandoned"} and statuses["accepted"] >= len(acked) - len(kill_points)
    assert verify(audit_log_path(tmp_path)).records > 0
