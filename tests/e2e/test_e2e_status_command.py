"""`rules-engine status` against a running service, and from the state dir once it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

from e2e_harness import E2E, move, wait_for

from rules_engine.cli import main

RULES = """
    - id: btc-up
      triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
      max_fires: {count: 3, window: 1d}
      actions:
        - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}
    - id: beat
      triggers: [{type: timer, every: 1h}]
      actions: [{type: log, message: "beat"}]
"""


async def _status(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(["status", *args])

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


async def test_status_reads_the_running_service_then_falls_back_to_the_state_dir(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(paper_wallet={"balances": {"ZUSD": "100000"}}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        code, out, _ = await _status("--url", url)
        assert code == 0, out
        assert out.startswith("engine: ok  mode=dry-run")
        line = next(row for row in out.splitlines() if row.startswith("btc-up"))
        assert "armed" in line and "completed" in line and " 1/3 " in line
        beat = next(row for row in out.splitlines() if row.startswith("beat"))
        assert "(in " in beat  # its next timer beat
        assert "spot: connected" in out and "XBTUSD: last tick" in out
        assert "kill switch: clear" in out and "open orders: 1" in out
        code, out, _ = await _status("--url", url, "--format", "json")
        doc = json.loads(out)
        assert code == 0 and doc["running"] is True
        assert doc["orders"][0]["rule_id"] == "btc-up" and doc["orders"][0]["price"] == "60000"
        assert doc["risk"]["open_orders"]["value"] == "1"
        e2e.write_rules(RULES + "    - id: bad\n      triggers: [{type: nonsense}]\n")
        assert not await service.reload("test")
        code, out, _ = await _status("--url", url)
        assert code == 1 and out.startswith("engine: degraded") and "reload_failed" in out
        assert "last reload: REFUSED" in out and "rules.yaml:" in out
        e2e.write_rules(RULES)
    code, out, _ = await _status("--url", url, "--state-dir", str(e2e.state_dir), "--timeout", "1")
    assert code == 1
    assert out.startswith("engine: down") and "not running (cannot reach" in out
    line = next(row for row in out.splitlines() if row.startswith("btc-up"))
    assert "armed" in line and "completed" in line and "1/3" in line
    assert "open orders: 1" in out
    code, out, _ = await _status("--url", url, "--state-dir", str(e2e.state_dir), "--format", "json",
                                 "--timeout", "1")
    doc: dict[str, Any] = json.loads(out)
    assert doc["running"] is False and doc["stopped_cleanly"] is True
    assert doc["rules"][0]["last_fire"]["decision_id"] == "btc-up#1"


async def test_status_usage_errors_exit_2(e2e: E2E) -> None:
    code, _, err = await _status("--timeout", "0")
    assert code == 2 and "--timeout" in err
    code, _, err = await _status("--config", str(e2e.tmp / "missing.yaml"))
    assert code == 2 and "not found" in err
