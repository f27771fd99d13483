"""The decision log's lines are written after an order has left, not on its way: none of the
fire's lines exists when the order reaches Kraken (the simulator); all of them follow, in seq
order, with the content of the audit records they name; a job held up (a slow answer) holds
them back at most ~20 ms (the timer); a stop writes what is left."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from e2e_harness import E2E, post, signed, wait_for
from rules_engine.core import intents as it
from rules_engine.service.decision_log import describe

RULES = """
- id: a
  triggers: [{type: signal, source: mybot}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


class Lines(logging.Handler):
    """The decision log's lines as `(seq, message, fields)`, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.guard = threading.Lock()
        self.lines: list[tuple[int, str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if "seq" in fields:
            with self.guard:
                self.lines.append((fields["seq"], record.getMessage(), dict(fields)))

    def copy(self) -> list[tuple[int, str, dict[str, Any]]]:
        with self.guard:
            return list(self.lines)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("rules_engine.decisions")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def expected_lines(e2e: E2E) -> list[tuple[int, str, dict[str, Any]]]:
    """The line of each audit record that has one, as the decision log describes it."""
    out = []
    for record in e2e.audit_records():
        line = describe(record)
        if line is not None and record["kind"] != "shutdown":  # written to the log itself after the last flush
            out.append((record["seq"], line[1], line[2]))
    return out


def order_line(lines: list[tuple[int, str, dict[str, Any]]]) -> list[int]:
    return [seq for seq, message, _ in lines if message == "order intent"]


async def test_no_line_of_a_fire_exists_when_its_order_leaves_and_all_follow_in_seq_order(
        e2e: E2E, lines: Lines, monkeypatch: pytest.MonkeyPatch) -> None:
    e2e.write_rules(RULES)
    at_send: list[list[tuple[int, str, dict[str, Any]]]] = []
    take_delay = e2e.sim.faults.take_delay

    def checked(method: str) -> float:  # the simulator's thread, as the AddOrder request arrives
        if method == "AddOrder":
            at_send.append(lines.copy())
        return take_delay(method)

    monkeypatch.setattr(e2e.sim.faults, "take_delay", checked)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False},
                           wait_feeds=False) as (service, seen, url):
        await service.settle()
        before = {seq for seq, _, _ in lines.copy()}
        body, headers = signed({"pair": "XBTUSD"}, signal_id="one")
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: [r for i, r in seen.reports if isinstance(i, it.PlaceOrder)], timeout=10)
        await service.settle()
        fired = [(seq, message) for seq, message, _ in lines.copy()
                 if seq not in before and message in ("trigger fired", "rule fired", "order intent")]
        assert [m for _, m in fired] == ["trigger fired", "rule fired", "order intent"]
        assert len(at_send) == 1
        sent_seen = {seq for seq, _, _ in at_send[0]}
        assert not sent_seen & {seq for seq, _ in fired}, "a line of the fire was written before its order left"
    written = lines.copy()
    assert [seq for seq, _, _ in written] == sorted(seq for seq, _, _ in written)  # in seq order, each once
    assert written == expected_lines(e2e)  # every record's line, with its content


async def test_a_held_up_order_holds_its_lines_back_only_briefly(e2e: E2E, lines: Lines) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False},
                           wait_feeds=False) as (service, seen, url):
        e2e.sim.faults.delay("AddOrder", 5.0, count=1)  # the answer takes 5 s: the job is in flight meanwhile
        body, headers = signed({"pair": "XBTUSD"}, signal_id="slow")
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: order_line(lines.copy()), timeout=2.0)  # the timer's, not the job's end
        assert service._lane is not None and service._lane.jobs == 1  # still on its way
        assert not [r for i, r in seen.reports if isinstance(i, it.PlaceOrder)]
        await wait_for(lambda: [r for i, r in seen.reports if isinstance(i, it.PlaceOrder)], timeout=10)
        await service.settle()
        assert lines.copy() == expected_lines(e2e)


async def test_a_stop_writes_every_line_left(e2e: E2E, lines: Lines) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False},
                           wait_feeds=False) as (service, seen, url):
        e2e.sim.faults.delay("AddOrder", 0.5, count=1)
        body, headers = signed({"pair": "XBTUSD"}, signal_id="at-stop")
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: service._lane is not None and service._lane.jobs == 1)
    # stopped (no settle() before): the order's answer came during the stop's drain
    assert [r for i, r in seen.reports if isinstance(i, it.PlaceOrder)]
    written = lines.copy()
    assert order_line(written) and written == expected_lines(e2e)
    assert [m for _, m, f in written if f.get("event") == "response"]  # the answer's line too
