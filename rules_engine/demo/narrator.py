"""Turn the engine's trace records and execution reports into a readable live account."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TextIO

from rules_engine.core import TraceRecord


def _num(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    return str(value)


class Narrator:
    """A service listener that prints what fired and why, as it happens."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self._clock = clock
        self._start = clock()
        self.fires = 0
        self.orders = 0

    def say(self, text: str, indent: int = 0) -> None:
        stamp = f"[{self._clock() - self._start:5.1f}s]"
        print(f"{stamp} {'    ' * indent}{text}", file=self.out, flush=True)

    def heading(self, text: str) -> None:
        print(f"\n== {text}", file=self.out, flush=True)

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "trace":
            self._trace(payload)
        elif kind == "report":
            self._report(*payload)
        elif kind == "signal_rejected":
            source, rejected = payload
            self.say(f"signal to {source} refused: {rejected.code} ({rejected.reason})", 1)
        elif kind == "kill_switch":
            self.say(f"kill switch {payload.describe()}")

    def _trace(self, record: TraceRecord) -> None:
        d = record.detail
        rule = record.rule_id
        kind = record.kind
        if kind == "trigger" and d.get("state") == "fired":
            if "level" in d:
                self.say(f"{rule}: {d['field']} {_num(d['value'])} crossed {d['direction']} {_num(d['level'])}")
            elif "source" in d:
                self.say(f"{rule}: signal {d.get('signal_id')} from {d['source']} matches")
            else:
                self.say(f"{rule}: timer beat (slot {time.strftime('%H:%M:%S', time.localtime(d['scheduled_time']))})")
        elif kind == "guard":
            values = ", ".join(f"{v['expression']} -> {_num(v['value'])}" for v in d.get("values", ()))
            verdict = "passed" if d.get("result") else "failed"
            if "where" in d:
                self.say(f"{rule}: where {d['where']!r} {verdict}")
            else:
                self.say(f"guard {verdict}: {values}", 1)
        elif kind == "decision" and "fire_seq" in d:
            self.fires += 1
            self.say(f"FIRES: decision {d['decision_id']}", 1)
        elif kind == "decision" and d.get("outcome"):
            extra = f": {d['reason']}" if d.get("reason") else ""
            self.say(f"run {d['outcome']}{extra}", 1)
        elif kind == "action" and "skipped" in d:
            why = f" ({d['expression']})" if d.get("expression") else ""
            action = f"{d.get('action')}{' ' + d['type'] if d.get('type') else ''}"
            self.say(f"skips action {action}: {d['skipped']}{why}", 1)
        elif kind == "action" and d.get("type") == "check_balance":
            verdict = "ok" if d.get("passed") else "TOO LOW"
            self.say(f"check_balance {d['asset']}: {_num(d['balance'])} >= {_num(d['minimum'])}? {verdict}", 1)
        elif kind == "action" and d.get("result") == "failed":
            self.say(f"{d.get('type')} failed: {d.get('error')}", 1)
        elif kind == "action" and "type" in d and "result" not in d and "intent_id" in d:
            self.say(f"-> {self._intent_text(d)}", 1)
        elif kind == "blocked" and rule is not None:
            self.say(f"blocked: {d.get('reason')}", 1)
        elif kind == "risk":
            self.say(f"risk limit {d['limit']}: {_num(d['value'])} > {_num(d['allowed'])} -> order blocked", 1)
        elif kind == "state" and "pending_until" in d:
            self.say(f"{rule}: guard holds; pending until its `for:` hold matures", 1)
        elif kind == "dropped" and rule is not None:
            self.say(f"{rule}: {d.get('reason')}", 1)
        elif kind == "error":
            self.say(f"error in {rule or 'engine'}: {d.get('reason')}", 1)

    @staticmethod
    def _intent_text(d: Mapping[str, Any]) -> str:
        kind = d["type"]
        if kind == "place_order":
            price = f" @ {_num(d['price'])}" if d.get("price") is not None else ""
            flags = f" [{','.join(d['oflags'])}]" if d.get("oflags") else ""
            return f"place_order {d['side']} {_num(d['volume'])} {d['pair']} {d['ordertype']}{price}{flags}"
        if kind == "futures_send_order":
            level = d.get("limit_price") or d.get("stop_price")
            at = f" @ {_num(level)}" if level is not None else ""
            return f"futures_send_order {d['side']} {_num(d['size'])} {d['symbol']} {d['order_type']}{at}"
        if kind == "read_balance":
            return "read the balance (the check needs a fresh one)"
        if kind in ("log", "notify"):
            return f"{kind}: {d['message']}"
        if kind == "dead_man_switch":
            return f"dead_man_switch: CancelAllOrdersAfter {d['timeout']} s"
        fields = {k: v for k, v in d.items() if k in ("txids", "cl_ord_ids", "order_ids", "cli_ord_ids", "userref",
                                                       "market") and v}
        return f"{kind} {fields}" if fields else kind

    def _report(self, intent: Any, report: Any) -> None:
        if intent is None or intent.kind in ("log", "notify"):
            return
        result = report.result
        response = report.response or {}
        if intent.kind == "place_order":
            self.orders += 1
            paper = response.get("paper") or {}
            txid = (result.data.get("txid") or ["-"])[0]
            state = f"paper order {txid} {paper.get('status', '')}".strip() if result.ok else f"refused: {result.error}"
            self.say(f"dry-run: AddOrder not sent to Kraken; {state}", 2)
        elif intent.kind == "read_balance" and result.ok:
            balances = result.data.get("balances", {})
            shown = ", ".join(f"{k} {v}" for k, v in list(balances.items())[:4])
            self.say(f"paper balance: {shown}", 2)
        elif response.get("would_send"):
            simulated = "" if result.data.get("simulated", True) else " (futures are not simulated in dry-run)"
            self.say(f"dry-run: would send {(report.request or {}).get('method', intent.kind)}{simulated}", 2)
