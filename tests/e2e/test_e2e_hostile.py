"""Issue 10 through the running service: the worst payloads of the red-team pass are refused
with their exact answer and audit record, strangers are audited in aggregate, hostile rule
files are refused on reload, and `/kill` and `/healthz` keep answering, not held up behind any
of it, while all of that is being processed (the 100 ms figure is bench/hostile.py's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from e2e_harness import ADMIN_TOKEN, E2E, FAST_FEED, Seen, post, rules_text, signed, wait_for
from rules_engine.config import parse_config
from rules_engine.service.app import EngineService
from rules_engine.service.webhook_limits import WebhookLimits

RULES = """
- id: risky
  triggers: [{type: signal, source: mybot}]
  actions:
    - type: place_order
      pair: XBTUSD
      side: buy
      ordertype: market
      volume: "=min(signal.risk ** 0.5, 0.001)"
- id: noted
  triggers: [{type: signal, source: mybot, where: "'note' in signal"}]
  actions: [{type: log, message: "note {signal.note}"}]
"""

OPEN = WebhookLimits(client_rate=10_000, client_burst=10_000, source_rate=10_000, source_burst=10_000)
BIG_BODIES = {"mybot": {"secret_env": "SIG_SECRET", "max_body_bytes": 1_000_000}}


@contextlib.asynccontextmanager
async def running(e2e: E2E, limits: WebhookLimits = OPEN) -> AsyncIterator[tuple[EngineService, Seen, str]]:
    config = parse_config(e2e.config_data(signals=BIG_BODIES), "<test config>")
    service = EngineService(config, [e2e.rules_dir], state_dir=e2e.state_dir, environ=e2e.environ,
                            reload_interval=0.1, kill_poll_interval=0.05, snapshot_interval=0.2,
                            feed_options=FAST_FEED, drain_timeout=5.0, webhook_limits=limits)
    seen = Seen()
    service.add_listener(seen)
    port = await service.start()
    try:
        yield service, seen, f"http://127.0.0.1:{port}"
    finally:
        await service.stop()


def worst_bodies() -> list[tuple[bytes, int, str]]:
    """(signed body, status, error) of the payloads that stalled or crashed the engine."""
    return [
        (b'{"risk": 1.' + b"1" * 20_000 + b"}", 422, "number_too_large"),  # 29 s stall
        (b'{"risk": 1.' + b"1" * 10_000 + b"}", 422, "number_too_large"),  # 8.2 s stall
        (b'{"note": ' + b"7" * 60_000 + b"}", 422, "number_too_large"),  # a 158 639-character log line
        (b'{"x": ' + b"[" * 900 + b"]" * 900 + b"}", 422, "too_deep"),  # RecursionError -> 500
        (b'{"x": ' + b"[" * 500 + b"]" * 500 + b"}", 422, "too_deep"),
        (b'{"x": [' + b",".join([b"1"] * 50_000) + b"]}", 422, "too_many_values"),
    ]


async def test_the_worst_signals_are_refused_at_once_and_audited(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with running(e2e) as (service, seen, url):
        for raw, status, error in worst_bodies():
            body, headers = signed(raw)
            started = time.perf_counter()
            answer_status, answer = await post(url + "/signals/mybot", body, headers)
            assert time.perf_counter() - started < 2.0  # not stalled
            assert (answer_status, answer["error"]) == (status, error)
        await service.settle()
        assert seen.fires() == []
    records = e2e.audit_records("signal_rejected")
    assert [(r["data"]["code"], r["data"]["status"]) for r in records] == [(e, s) for _, s, e in worst_bodies()]
    assert records[0]["data"]["reason"] == "risk: the number has 20001 digits (limit 100)"
    assert records[3]["data"]["reason"] == "the body is nested more than 32 levels deep (limit 32)"
    assert all(len(json.dumps(r)) < 2000 for r in records)  # no body in the audit log
    assert e2e.audit_ok()


async def test_escape_text_in_a_signal_is_data_shown_escaped(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    notes = ["{0.__class__.__mro__[1].__subclasses__()}", "__import__('os').system('touch /tmp/pwned')",
             "{signal.__class__}", "line\nforged: record", "print.__reduce__()"]
    async with running(e2e) as (service, seen, url):
        for n, note in enumerate(notes):
            body, headers = signed({"note": note, "risk": 0, "id": f"n{n}"})
            assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: len(seen.intents("log")) == len(notes))
        await service.settle()
    messages = sorted(i.message for i in seen.intents("log"))
    assert messages == sorted("note " + n.replace("\n", "\\n") for n in notes)


async def test_strangers_are_counted_every_time_but_audited_once_per_interval(e2e: E2E) -> None:
    """Finding 7: each unauthenticated request added about 431 bytes to the audit log."""
    e2e.write_rules(RULES)
    async with running(e2e) as (service, seen, url):
        size_before = (e2e.state_dir / "audit.jsonl").stat().st_size
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                async with session.post(url + "/signals/mybot", data=b"{}",
                                        headers={"X-Timestamp": "1", "X-Signature": "sha256=" + "0" * 64}) as r:
                    assert r.status == 401
            body, headers = signed({"id": "x"}, secret="wrong-secret")
            async with session.post(url + "/signals/nobody", data=body, headers=headers) as r:
                assert r.status == 404
        metric = service.metrics.signals_rejected
        assert metric.labels("mybot", "invalid_signature")._value.get() == 200
        assert metric.labels("(unknown)", "unknown_source")._value.get() == 1
        await service.settle()
        service.audit.sync()
        grown = (e2e.state_dir / "audit.jsonl").stat().st_size - size_before
    [record] = e2e.audit_records("signal_rejected")
    assert record["data"]["code"] == "invalid_signature"
    assert (record["data"]["unauthenticated"], record["data"]["unrecorded_before"]) == (True, 0)
    assert grown < 2000


async def test_the_default_limits_refuse_a_flood_with_429(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with running(e2e, WebhookLimits()) as (service, seen, url):
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(100):
                async with session.post(url + "/signals/mybot", data=b"{}") as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        assert int(response.headers["Retry-After"]) >= 1
        assert statuses.count(401) <= 25 and statuses.count(429) >= 75


async def test_hostile_rule_files_are_refused_on_reload_and_the_rules_keep_running(e2e: E2E) -> None:
    """Finding 2: dropping this file into the rules folder blocked the event loop for 7 s."""
    e2e.write_rules(RULES)
    async with running(e2e) as (service, seen, url):
        (e2e.rules_dir / "slow.yaml").write_text(rules_text("""
            - id: slow
              triggers: [{type: timer, every: 1m}]
              when: "scheduled_time > 0 and decimal('1.' + '1'*9990) ** 1.5 > 0"
              actions: [{type: cancel_all}]
            - id: escape
              triggers: [{type: timer, every: 1m}]
              when: "().__class__.__bases__[0].__subclasses__()"
              actions: [{type: cancel_all}]
        """))
        started = time.perf_counter()
        await wait_for(lambda: seen.reloads)
        assert time.perf_counter() - started < 3.0
        [reload] = seen.reloads
        assert reload["ok"] is False
        assert any("decimal() of a number too large: the number has 9991 digits (limit 100)" in e
                   for e in reload["errors"])
        assert any('rule "escape": invalid expression: only named functions can be called' in e
                   for e in reload["errors"])
        assert service.health()["rules_loaded"] == 2


async def _latency(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        await response.read()
    return time.perf_counter() - started


async def test_kill_and_healthz_are_not_held_up_by_the_worst_payloads(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with running(e2e) as (service, seen, url):
        await wait_for(lambda: service.health()["ok"])
        stop = asyncio.Event()
        processed = [0]

        async def attack() -> None:
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    for raw, status, _ in worst_bodies():
                        body, headers = signed(raw)
                        async with session.post(url + "/signals/mybot", data=body, headers=headers) as response:
                            assert response.status == status
                            processed[0] += 1

        async def slowloris() -> None:
            held = []
            host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
            for _ in range(50):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"POST /signals/mybot HTTP/1.1\r\nHost: x\r\n")
                held.append(writer)
            await stop.wait()
            for writer in held:
                writer.close()

        async def hostile_reloads() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                (e2e.rules_dir / "slow.yaml").write_text(rules_text(f"""
                    - id: slow{n}
                      triggers: [{{type: timer, every: 1m}}]
                      when: "scheduled_time > {n} and decimal('1.' + '1'*9990) ** 1.5 > 0"
                      actions: [{{type: cancel_all}}]
                """))
                await asyncio.sleep(0.15)

        tasks = [asyncio.ensure_future(t) for t in (attack(), attack(), slowloris(), hostile_reloads())]
        latencies: dict[str, list[float]] = {"/healthz": [], "/kill": []}
        try:
            await wait_for(lambda: processed[0] >= 6)
            async with aiohttp.ClientSession() as session:
                for _ in range(20):
                    latencies["/healthz"].append(await _latency(session, url + "/healthz", {}))
                    latencies["/kill"].append(await _latency(session, url + "/kill",
                                                             {"Authorization": f"Bearer {ADMIN_TOKEN}"}))
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert processed[0] >= 12 and seen.reloads and not any(r["ok"] for r in seen.reloads)
        # Not a speed target (bench/hostile.py measures the 100 ms one): the endpoints must not wait
        # behind the hostile work, which held them for 18.6 s before the fix.
        worst = {path: max(values) for path, values in latencies.items()}
        assert all(value < 1.0 for value in worst.values()), worst


async def test_the_limits_come_from_the_engine_config(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    limits = {"client_rate": 0.01, "client_burst": 2, "header_timeout": "2s", "reject_audit_interval": "1h"}
    async with e2e.running(wait_feeds=False, server={"host": "127.0.0.1", "port": 0, "limits": limits}) as (
            service, seen, url):
        assert (service.webhook_limits.client_burst, service.webhook_limits.header_timeout) == (2, 2.0)
        statuses = [(await post(url + "/signals/mybot", b"{}"))[0] for _ in range(3)]
        assert statuses == [401, 401, 429]


async def test_a_huge_number_sent_as_text_is_an_error_at_its_file_line(e2e: E2E) -> None:
    """Text is not a JSON number, so the signal is accepted; the rule that reads it as a number
    errors with the limit, the expression and where it is written, and sends nothing."""
    path = e2e.write_rules("""
        - id: texty
          triggers: [{type: signal, source: mybot}]
          actions:
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: "=signal.qty"}
    """)
    async with running(e2e) as (service, seen, url):
        body, headers = signed({"qty": "1." + "1" * 60_000, "id": "t1"})
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: [r for r in seen.trace if r.kind == "error"])
        await service.settle()
    [error] = [r for r in seen.trace if r.kind == "error"]
    assert error.rule_id == "texty"
    assert error.detail["reason"] == "expected a number within the limits: the number has 60001 digits (limit 100)"
    assert error.detail["at"] == f"{path.as_posix()}:6:83"  # where `signal.qty` starts
    assert seen.intents("place_order") == []


ESCAPES = [  # the corpus of tests/ruletests/test_hostile_corpus.py (messages asserted there)
    "f\"{dict.mro()[1]:'{__fstring__.__class__.__base__.__subclasses__()}'}\"",
    "'{0.__class__.__base__.__subclasses__}'.format(signal)",
    "print.__self__.node_handlers",
    "signal.__class__.__init__.__globals__['sys'].modules['os'].system('id')",
    "min.__self__.__import__('os')",
    "print.__reduce__()[0](print, '__globals__')",
    "(x for x in [1]).gi_frame.f_back.f_back.f_globals",
    "getattr(signal, '__class__')",
    "ｐｒｉｎｔ('x')",
    "_＿import＿_('os')",
]


async def test_a_rule_file_of_escapes_is_refused_on_reload_one_error_per_rule(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with running(e2e) as (service, seen, url):
        rules = "".join(f"  - id: esc{n}\n    triggers: [{{type: signal, source: mybot}}]\n"
                        f"    when: {json.dumps(expression, ensure_ascii=False)}\n"
                        f"    actions: [{{type: log, message: x}}]\n" for n, expression in enumerate(ESCAPES))
        (e2e.rules_dir / "escapes.yaml").write_text("version: 1\nrules:\n" + rules, encoding="utf-8")
        await wait_for(lambda: seen.reloads)
        [reload] = seen.reloads
        assert reload["ok"] is False
        assert sorted(e.split(": ", 2)[1] for e in reload["errors"]) == sorted(
            f'rule "esc{n}"' for n in range(len(ESCAPES)))
        assert all(": invalid expression: " in e for e in reload["errors"])
        body, headers = signed({"note": "still running", "risk": 0, "id": "after"})
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: seen.intents("log"))
    [record] = [r for r in e2e.audit_records("reload") if not r["data"]["ok"]]
    assert len(record["data"]["errors"]) == len(ESCAPES)
