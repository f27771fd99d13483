"""A stand-in engine for the crash tests (run as a script): it decides, audits and "sends"
orders in a loop, in the order the engine must use, and prints `decided N` once decision
N is durable. The test kills it with SIGKILL at arbitrary points and restarts it.

Usage: python state_crash_child.py STATE_DIR TOTAL   (secret in $CRASH_TEST_SECRET)
"""

import os
import sys
from decimal import Decimal
from pathlib import Path

from rules_engine.audit import AuditLog
from rules_engine.redact import register_secret
from rules_engine.state import StateStore, audit_log_path, database_path

KEY_FINGERPRINT = "0123456789ab"


def main(state_dir: Path, total: int) -> None:
    secret = os.environ["CRASH_TEST_SECRET"]
    register_secret(secret)
    store = StateStore(database_path(state_dir))
    audit = AuditLog(audit_log_path(state_dir), mode="live")
    exchange = state_dir / "exchange.log"  # the fake exchange: one line per order received
    received = set(exchange.read_text().split()) if exchange.exists() else set()
    audit.append("startup", data={"secret_check": secret})

    # Reconcile before anything else: look each unresolved decision up "on the exchange".
    for decision in store.unresolved_decisions():
        status = "accepted" if decision.cl_ord_id in received else "abandoned"
        store.record_outcome(decision.cl_ord_id, status, {"reconciled": True})
        audit.append(
            "reconcile",
            rule_id=decision.rule_id,
            data={"cl_ord_id": decision.cl_ord_id, "was": decision.status, "now": status},
            sync=True,
        )

    n = (store.load_engine_snapshot() or {"next": 0})["next"]
    print(f"start {n}", flush=True)
    exchange_fd = os.open(exchange, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    while n < total:
        cl_ord_id = f"ord-{n}"
        with store.transaction():
            store.record_decision(cl_ord_id, "rule-a", f"dec-{n}", {"pair": "XBTUSD", "volume": Decimal("0.01")})
            store.save_engine_snapshot({"next": n + 1})
        audit.append("decision", rule_id="rule-a", rule_file_hash="f" * 64, data={"cl_ord_id": cl_ord_id}, sync=True)
        print(f"decided {n}", flush=True)
        store.mark_sent(cl_ord_id)
        audit.append(
            "request",
            rule_id="rule-a",
            data={"cl_ord_id": cl_ord_id, "headers": {"API-Key": "public"}, "body": f"nonce={n}&k={secret}"},
        )
        os.write(exchange_fd, f"{cl_ord_id}\n".encode())
        audit.append("response", rule_id="rule-a", data={"cl_ord_id": cl_ord_id, "txid": [f"TX{n}"]})
        store.record_outcome(cl_ord_id, "accepted", {"txid": [f"TX{n}"]})
        store.save(KEY_FINGERPRINT, n + 1)
        n += 1
    audit.append("shutdown")
    audit.close()
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
