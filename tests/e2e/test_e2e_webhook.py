"""Each way the webhook refuses a signal, over real HTTP: the answer, one `signal_rejected`
audit record with its code, the metric, and no rule fired."""

from __future__ import annotations

import json
import time

import pytest

from e2e_harness import SIGNAL_SECRET, E2E, post, signed, wait_for
from rules_engine.service.startup import StartupError

GOOD = {"action": "buy", "id": "sig-1"}


def _cases() -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    body, headers = signed(GOOD)
    ts = headers["X-Timestamp"]
    no_sig = {k: v for k, v in headers.items() if k != "X-Signature"}
    no_ts = {k: v for k, v in headers.items() if k != "X-Timestamp"}
    wrong = signed(GOOD, secret="not-the-secret")[1]
    stale = signed(GOOD, timestamp=time.time() - 3600)
    future = signed(GOOD, timestamp=time.time() + 3600)
    not_json = signed(b"{nope")
    array = signed(b"[1, 2]")
    bad_id = signed({"action": "buy", "id": ["x"]})
    big = signed({"action": "buy", "pad": "x" * 1024})
    schema = (json.dumps({"passphrase": "tv-passphrase-123", "ticker": "XBTUSD", "action": "hold"}).encode(), {})
    return [
        ("unknown_source", "nobody", body, headers, 404, "unknown_source"),
        ("missing_signature", "mybot", body, no_sig, 401, "missing_signature"),
        ("missing_timestamp", "mybot", body, no_ts, 401, "missing_timestamp"),
        ("invalid_timestamp", "mybot", body, {**headers, "X-Timestamp": "yesterday"}, 401, "invalid_timestamp"),
        ("invalid_signature", "mybot", body, wrong, 401, "invalid_signature"),
        ("stale_timestamp", "mybot", stale[0], stale[1], 401, "stale_timestamp"),
        ("future_timestamp", "mybot", future[0], future[1], 401, "future_timestamp"),
        ("invalid_json", "mybot", not_json[0], not_json[1], 400, "invalid_json"),
        ("not_an_object", "mybot", array[0], array[1], 400, "not_an_object"),
        ("invalid_id", "mybot", bad_id[0], bad_id[1], 400, "invalid_id"),
        ("body_too_large", "mybot", big[0], big[1], 413, "body_too_large"),
        ("wrong_passphrase", "tradingview", b'{"passphrase": "guess", "ticker": "X", "action": "buy"}', {}, 401,
         "wrong_passphrase"),
        ("missing_credentials", "tradingview", b'{"ticker": "X", "action": "buy"}', {}, 401, "missing_credentials"),
        ("signature_not_accepted", "tradingview", body, headers, 401, "signature_not_accepted"),
        ("schema_violation", "tradingview", schema[0], schema[1], 422, "schema_violation"),
    ]


RULES = """
- id: bot
  triggers: [{type: signal, source: mybot}]
  actions: [{type: log, message: "signal {signal.id}"}]
- id: tv
  triggers: [{type: signal, source: tradingview}]
  actions: [{type: log, message: "tv"}]
"""


@pytest.mark.parametrize("name", [c[0] for c in _cases()])
async def test_each_rejection_is_answered_audited_and_counted(e2e: E2E, name: str) -> None:
    # signed when the test runs, not when the suite is collected (a long run makes them stale)
    _, source, body, headers, status, code = next(c for c in _cases() if c[0] == name)
    e2e.write_rules(RULES)
    async with e2e.running(wait_feeds=False) as (service, seen, url):
        answer_status, answer = await post(f"{url}/signals/{source}", body, headers)
        assert (answer_status, answer["ok"], answer["error"]) == (status, False, code)
        await service.settle()
        assert seen.fires() == []
        label = source if source in service.signal_sources else "(unknown)"
        assert service.metrics.signals_rejected.labels(label, code)._value.get() == 1
    records = e2e.audit_records("signal_rejected")
    assert [(r["data"]["code"], r["data"]["status"]) for r in records] == [(code, status)]
    assert SIGNAL_SECRET not in (e2e.state_dir / "audit.jsonl").read_text()


async def test_a_replayed_signal_is_refused_and_fires_once(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(wait_feeds=False) as (service, seen, url):
        body, headers = signed(GOOD)
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        status, answer = await post(url + "/signals/mybot", body, headers)
        assert (status, answer["error"]) == (409, "replayed")
        other_body, other_headers = signed(GOOD, signal_id="sig-1")
        assert (await post(url + "/signals/mybot", other_body, other_headers))[0] == 409
        await wait_for(lambda: seen.fires("bot"))
        await service.settle()
        assert len(seen.fires("bot")) == 1
    assert [r["data"]["code"] for r in e2e.audit_records("signal_rejected")] == ["replayed", "replayed"]


TV_ALERT = json.dumps({"passphrase": "tv-passphrase-123", "ticker": "XBTUSD", "action": "buy"}).encode()


async def test_a_static_tradingview_alert_that_fires_twice_is_acted_on_twice(e2e: E2E) -> None:
    """A passphrase source does not de-duplicate alerts without an id unless it says `dedup: body`."""
    e2e.write_rules(RULES)
    async with e2e.running(wait_feeds=False) as (service, seen, url):
        for _ in range(2):
            assert (await post(url + "/signals/tradingview", TV_ALERT, {}))[0] == 202
        await wait_for(lambda: len(seen.fires("tv")) == 2)
    assert e2e.audit_records("signal_rejected") == []


async def test_dedup_body_refuses_the_repeat(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    sources = {"tradingview": {"passphrase_env": "TV_PASS", "schema": "tradingview", "dedup": "body",
                               "dedup_window": "10m"}}
    async with e2e.running(wait_feeds=False, signals=sources) as (service, seen, url):
        assert (await post(url + "/signals/tradingview", TV_ALERT, {}))[0] == 202
        status, answer = await post(url + "/signals/tradingview", TV_ALERT, {})
        assert (status, answer["error"]) == (409, "replayed")
        await wait_for(lambda: seen.fires("tv"))
        await service.settle()
        assert len(seen.fires("tv")) == 1
    assert [r["data"]["code"] for r in e2e.audit_records("signal_rejected")] == ["replayed"]


async def test_a_source_checked_against_your_own_payload_schema(e2e: E2E, tmp_path, monkeypatch) -> None:
    """`schema: mybot` found in a folder of RULES_ENGINE_SIGNAL_SCHEMAS, not in the package."""
    folder = tmp_path / "signal-schemas"
    folder.mkdir()
    (folder / "mybot.schema.json").write_text(json.dumps({
        "type": "object", "required": ["action"], "properties": {"action": {"enum": ["buy", "sell"]}}}))
    monkeypatch.setenv("RULES_ENGINE_SIGNAL_SCHEMAS", str(folder))
    e2e.write_rules(RULES)
    sources = {"mybot": {"secret_env": "SIG_SECRET", "timestamp_window": "5m", "schema": "mybot"}}
    async with e2e.running(wait_feeds=False, signals=sources) as (service, seen, url):
        body, headers = signed({"action": "hold", "id": "s-1"})
        status, answer = await post(url + "/signals/mybot", body, headers)
        assert (status, answer["error"]) == (422, "schema_violation")
        body, headers = signed({"action": "buy", "id": "s-2"})
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: seen.fires("bot"))
        await service.settle()
        assert len(seen.fires("bot")) == 1
    assert [r["data"]["code"] for r in e2e.audit_records("signal_rejected")] == ["schema_violation"]
    monkeypatch.delenv("RULES_ENGINE_SIGNAL_SCHEMAS")  # the engine refuses to start without the schema it names
    with pytest.raises(StartupError, match=r"no payload schema named 'mybot' in schemas/signals/"):
        await e2e.service(signals=sources).start()
