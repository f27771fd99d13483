"""Issue 10 at signal intake (`verify_signal`): findings 1, 5 and 8. Numbers have a bounded
size, depth and value count are checked before the parser runs, every refusal names the
limit (and the field), and no refusal quotes a value of the payload."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

from rules_engine.service.signals import Accepted, Rejected, SignalSourceConfig, verify_signal

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cret-hmac-key-for-hostile-tests"
PASS = "tv-passphrase-for-hostile-tests"
NOW = 1_718_000_000.0
NOT_STALLED = 1.0
BIG = 1 << 20


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(NOW))
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": stamp, "X-Signature": f"sha256={mac}"}


def never_seen(source: str, signal_id: str, now: float, ttl: float) -> bool:
    return False


def verify(body: bytes, schema: dict[str, Any] | None = None, passphrase: bool = False) -> Accepted | Rejected:
    if passphrase:
        config = SignalSourceConfig(name="tv", passphrase=PASS, schema=schema, max_body_bytes=BIG)
        headers: dict[str, str] = {}
    else:
        config = SignalSourceConfig(name="bot", secret=SECRET, schema=schema, max_body_bytes=BIG)
        headers = signed(body)
    started = time.perf_counter()
    result = verify_signal(config, headers, body, NOW, never_seen)
    assert time.perf_counter() - started < NOT_STALLED
    return result


def refusal(result: Accepted | Rejected) -> tuple[int, str, str]:
    assert isinstance(result, Rejected)
    return result.status, result.code, result.reason


@pytest.mark.parametrize(("body", "reason"), [
    # finding 1: this body stalled the engine for 29 s behind a rule computing signal.risk ** 0.5
    (b'{"risk": 1.' + b"1" * 20_000 + b"}", "risk: the number has 20001 digits (limit 100)"),
    (b'{"risk": 1' + b"0" * 4_000 + b"}", "risk: the number has 4001 digits (limit 100)"),
    (b'{"risk": 1' + b"0" * 10_000 + b"}", "risk: the number has 10001 digits (limit 100)"),
    (b'{"a": {"b": [1, 2.5e5000]}}', "a/b/1: the number's exponent 5000 is out of range (limit ±1000)"),
    (b'{"a": 1e-5000}', "a: the number's exponent -5000 is out of range (limit ±1000)"),
])
def test_numbers_beyond_the_limits_are_a_422_naming_the_field(body: bytes, reason: str) -> None:
    assert refusal(verify(body)) == (422, "number_too_large", reason)


def test_numbers_within_the_limits_arrive_exact() -> None:
    body = b'{"qty": 0.' + b"1" * 99 + b', "n": ' + b"9" * 100 + b', "tiny": 1e-1000}'
    result = verify(body)
    assert isinstance(result, Accepted)
    assert str(result.signal.payload["qty"]) == "0." + "1" * 99
    assert result.signal.payload["n"] == 10**100 - 1


@pytest.mark.parametrize("depth", [33, 500, 900, 100_000])
def test_deep_nesting_is_a_422_before_parsing(depth: int) -> None:
    """Finding 5: 500-900 levels reached a RecursionError in the audit serializer (a 500)."""
    body = b'{"x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    assert refusal(verify(body)) == (422, "too_deep", "the body is nested more than 32 levels deep (limit 32)")


def test_nesting_to_the_limit_is_accepted() -> None:
    body = b'{"x": ' + b"[" * 31 + b"]" * 31 + b"}"
    assert isinstance(verify(body), Accepted)


def test_too_many_values_is_a_422() -> None:
    body = b'{"x": [' + b",".join([b"0"] * 20_000) + b"]}"
    assert refusal(verify(body)) == (422, "too_many_values", "the body holds more than 10000 values (limit 10000)")


@pytest.mark.parametrize("body", [
    b'{"s": "' + b"[" * 5000 + b'"}',  # brackets inside text are text
    b'{"s": "\\"[[[[", "t": "]]]]\\\\"}',
])
def test_brackets_inside_strings_do_not_count(body: bytes) -> None:
    assert isinstance(verify(body), Accepted)


def test_an_unterminated_string_is_invalid_json_in_linear_time() -> None:
    body = b'{"s": "' + b'\\"' * 200_000
    assert refusal(verify(body))[:2] == (400, "invalid_json")


def test_the_passphrase_mode_checks_the_limits_before_the_passphrase() -> None:
    body = b'{"passphrase": "guess", "x": ' + b"[" * 900 + b"]" * 900 + b"}"
    result = verify(body, passphrase=True)
    assert refusal(result)[:2] == (422, "too_deep")
    assert isinstance(result, Rejected) and result.authenticated is False


SCHEMA = {
    "type": "object",
    "properties": {
        "price": {"type": "number", "minimum": 1},
        "side": {"enum": ["buy", "sell"]},
        "note": {"type": "string", "maxLength": 5, "pattern": "^[a-z]*$"},
        "kind": {"const": "alert"},
    },
}

LEAK = "hunter2-leaked-value"


@pytest.mark.parametrize(("payload", "reason"), [
    (f'{{"price": "{LEAK}"}}', "price: must be of type number"),
    ('{"price": -5}', "price: must satisfy minimum: 1"),
    (f'{{"side": "{LEAK}"}}', "side: does not satisfy the schema's 'enum' rule"),
    (f'{{"note": "{LEAK}"}}', "note: must satisfy maxLength: 5"),
    ('{"note": "ABC"}', 'note: must satisfy pattern: "^[a-z]*$"'),
    (f'{{"kind": "{LEAK}"}}', "kind: does not satisfy the schema's 'const' rule"),
])
def test_schema_violations_quote_no_value_of_the_payload(payload: str, reason: str) -> None:
    """Finding 8: the 422 echoed payload values unredacted."""
    for passphrase in (False, True):
        body = payload.encode() if not passphrase else payload.replace("{", f'{{"passphrase": "{PASS}", ', 1).encode()
        result = verify(body, SCHEMA, passphrase=passphrase)
        assert refusal(result) == (422, "schema_violation", reason)
        assert isinstance(result, Rejected) and result.authenticated is True


def test_refusals_before_authentication_are_marked_as_strangers() -> None:
    config = SignalSourceConfig(name="bot", secret=SECRET, max_body_bytes=BIG)
    body = b'{"a": 1}'
    bad = verify_signal(config, {**signed(body), "X-Signature": "sha256=" + "0" * 64}, body, NOW, never_seen)
    stale = verify_signal(config, signed(body), body, NOW + 3600, never_seen)
    assert isinstance(bad, Rejected) and (bad.code, bad.authenticated) == ("invalid_signature", False)
    assert isinstance(stale, Rejected) and (stale.code, stale.authenticated) == ("stale_timestamp", True)


def test_a_body_that_is_not_utf8_is_refused_before_scanning() -> None:
    """UTF-16 puts quote and bracket bytes inside characters, which could hide nesting from the
    scan; JSON between systems is UTF-8 (RFC 8259), so nothing else is read."""
    body = ('{"x": ' + "[" * 900 + "]" * 900 + "}").encode("utf-16")
    assert refusal(verify(body)) == (400, "invalid_json", "body is not UTF-8 text (bad byte at offset 0)")


def test_a_utf8_bom_is_allowed() -> None:
    assert isinstance(verify(b'\xef\xbb\xbf{"a": 1}'), Accepted)


def test_a_decimal_constraint_is_shown_as_the_schema_writes_it() -> None:
    schema = {"type": "object", "properties": {"price": {"type": "number", "multipleOf": 0.01}}}
    assert refusal(verify(b'{"price": 1.005}', schema)) == (422, "schema_violation", "price: must satisfy "
                                                                                    "multipleOf: 0.01")


@pytest.mark.parametrize("passphrase", [False, True])
def test_a_plain_text_alert_or_an_empty_body_is_told_to_be_json(passphrase: bool) -> None:
    # a TradingView alert whose message is plain text arrives as that text
    status, code, reason = refusal(verify(b"BTCUSD crossed 70000, buy 0.1", passphrase=passphrase))
    assert (status, code) == (400, "invalid_json")
    assert reason.startswith('body is not JSON: a signal is a JSON object such as {"action": "buy"}; a TradingView')
    assert "70000" not in reason  # nothing of the body is quoted
    assert refusal(verify(b"  \n", passphrase=passphrase)) == (400, "invalid_json",
                                                                "body is empty: a signal is a JSON object")
