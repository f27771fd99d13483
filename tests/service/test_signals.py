import hashlib
import hmac
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from rules_engine.config import ConfigError, parse_config
from rules_engine.secret_reader import SecretError, load_secret
from rules_engine.service.signals import (
    Accepted,
    Rejected,
    SignalSourceConfig,
    signature_hex,
    verify_signal,
)

SECRET = "s3cret-hmac-key-for-tests"
PASS = "tv-passphrase-123"
NOW = 1_718_000_000.0
SCHEMA = {
    "type": "object",
    "required": ["action", "price"],
    "properties": {
        "action": {"enum": ["buy", "sell"]},
        "price": {"type": "number", "minimum": 0.5, "multipleOf": 0.01},
        "id": {"type": ["string", "integer"]},
    },
}


class Seen:
    """An in-memory `seen(source, id, now, ttl)` that records calls."""

    def __init__(self):
        self.until: dict[tuple[str, str], float] = {}
        self.calls: list[tuple[str, str, float, float]] = []

    def __call__(self, source, signal_id, now, ttl):
        self.calls.append((source, signal_id, now, ttl))
        key = (source, signal_id)
        if self.until.get(key, -1) >= now:
            return True
        self.until[key] = now + ttl
        return False


def hmac_config(**kw):
    return SignalSourceConfig(name="bot", secret=SECRET, schema=SCHEMA, **kw)


def signed(body: bytes, ts: float = NOW, secret: str = SECRET, **extra):
    stamp = str(int(ts))
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": stamp, "X-Signature": f"sha256={mac}", **extra}


BODY = b'{"action": "buy", "price": 101.25, "id": "sig-1"}'


def test_signature_hex_is_the_documented_formula():
    expected = hmac.new(b"k", b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert signature_hex("k", "1700000000", b"{}") == expected


def test_valid_hmac_signal_is_accepted_with_decimal_numbers():
    seen = Seen()
    result = verify_signal(hmac_config(), signed(BODY), BODY, NOW + 5, seen)
    assert isinstance(result, Accepted) and result.mode == "hmac"
    sig = result.signal
    assert (sig.source, sig.signal_id, sig.time) == ("bot", "sig-1", NOW + 5)
    assert sig.payload["price"] == Decimal("101.25") and isinstance(sig.payload["price"], Decimal)
    # both the MAC-derived id and the declared id are recorded, for 2 x window
    assert [c[1][:4] for c in seen.calls] == ["sig-", "mac:"]
    assert all(c[3] == 600.0 for c in seen.calls)


def test_headers_are_case_insensitive_and_header_id_wins():
    headers = {k.lower(): v for k, v in signed(BODY).items()} | {"x-signal-id": "hdr-7"}
    result = verify_signal(hmac_config(), headers, BODY, NOW, Seen())
    assert isinstance(result, Accepted) and result.signal.signal_id == "hdr-7"


def test_signal_without_id_gets_one_derived_from_the_mac():
    body = b'{"action": "sell", "price": 3}'
    headers = signed(body)
    result = verify_signal(hmac_config(), headers, body, NOW, Seen())
    assert isinstance(result, Accepted)
    assert result.signal.signal_id == "mac:" + headers["X-Signature"][len("sha256="):][:32]


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "missing_signature"),
        ({"X-Signature": "sha256=" + "0" * 64}, "missing_timestamp"),
        ({"X-Signature": "sha256=" + "0" * 64, "X-Timestamp": "yesterday"}, "invalid_timestamp"),
        ({"X-Signature": "md5=abc", "X-Timestamp": str(int(NOW))}, "invalid_signature"),
        ({"X-Signature": "sha256=" + "0" * 64, "X-Timestamp": str(int(NOW))}, "invalid_signature"),
    ],
)
def test_missing_or_malformed_authentication_is_401(headers, code):
    result = verify_signal(hmac_config(), headers, BODY, NOW, Seen())
    assert isinstance(result, Rejected) and (result.status, result.code) == (401, code)


def test_wrong_secret_and_tampered_body_and_moved_timestamp_fail():
    cfg = hmac_config()
    assert verify_signal(cfg, signed(BODY, secret="other"), BODY, NOW, Seen()).code == "invalid_signature"
    tampered = BODY.replace(b"101.25", b"1.25")
    assert verify_signal(cfg, signed(BODY), tampered, NOW, Seen()).code == "invalid_signature"
    moved = signed(BODY) | {"X-Timestamp": str(int(NOW) + 1)}
    assert verify_signal(cfg, moved, BODY, NOW, Seen()).code == "invalid_signature"


def test_timestamp_window_both_ways():
    cfg = hmac_config(timestamp_window=60)
    assert isinstance(verify_signal(cfg, signed(BODY, NOW - 60), BODY, NOW, Seen()), Accepted)
    stale = verify_signal(cfg, signed(BODY, NOW - 61), BODY, NOW, Seen())
    assert (stale.status, stale.code) == (401, "stale_timestamp")
    future = verify_signal(cfg, signed(BODY, NOW + 61), BODY, NOW, Seen())
    assert (future.status, future.code) == (401, "future_timestamp")
    millis = {"X-Timestamp": str(int(NOW * 1000))}
    millis["X-Signature"] = "sha256=" + signature_hex(SECRET, millis["X-Timestamp"], BODY)
    assert "milliseconds" in verify_signal(cfg, millis, BODY, NOW, Seen()).reason


def test_replay_is_409_and_a_new_header_id_does_not_bypass_it():
    cfg, seen = hmac_config(), Seen()
    assert isinstance(verify_signal(cfg, signed(BODY), BODY, NOW, seen), Accepted)
    again = verify_signal(cfg, signed(BODY), BODY, NOW + 1, seen)
    assert (again.status, again.code, again.signal_id) == (409, "replayed", "sig-1")
    # an attacker re-sends the captured request under another (unsigned) X-Signal-Id
    forged = verify_signal(cfg, signed(BODY) | {"X-Signal-Id": "fresh"}, BODY, NOW + 2, seen)
    assert forged.code == "replayed"
    # ... and the reason says what was received before: the request, not an id 'fresh'
    assert "was already received" in again.reason and "'sig-1'" in again.reason
    assert forged.reason.startswith("this signed request (the same timestamp, body and signature) was already received")
    assert "a new id ('fresh') does not make it a new signal" in forged.reason
    # the sender's own retry, re-signed later with the same payload id, is also a replay
    retry = verify_signal(cfg, signed(BODY, NOW + 30), BODY, NOW + 30, seen)
    assert retry.code == "replayed"


def test_rejected_signals_are_not_recorded_as_seen():
    cfg, seen = hmac_config(), Seen()
    bad = b'{"action": "hold", "price": 1, "id": "x1"}'
    assert verify_signal(cfg, signed(bad), bad, NOW, seen).code == "schema_violation"
    assert seen.calls == []


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "not_an_object"),
        (b'{"a": 1, "a": 2}', 400, "invalid_json"),
        (b'{"action": "buy", "price": NaN}', 400, "invalid_json"),
        (b'{"action": "buy", "price": 1, "x": [{"$decimal": "1"}]}', 400, "invalid_json"),  # reserved for state
        (b"[" * 100_000 + b"]" * 100_000, 413, "body_too_large"),
        (b'{"action": "buy", "price": 1, "id": {"x": 1}}', 400, "invalid_id"),
        (b'{"action": "buy", "price": 1, "id": ""}', 400, "invalid_id"),
        (b'{"action": "buy"}', 422, "schema_violation"),
        (b'{"action": "buy", "price": 1.234}', 422, "schema_violation"),
    ],
)
def test_body_problems_have_distinct_codes(body, status, code):
    result = verify_signal(hmac_config(), signed(body), body, NOW, Seen())
    assert isinstance(result, Rejected) and (result.status, result.code) == (status, code)


def test_deep_nesting_within_the_size_limit_is_a_422_naming_the_limit_not_a_crash():
    body = b"[" * 60_000 + b"]" * 60_000
    cfg = hmac_config(max_body_bytes=200_000)
    result = verify_signal(cfg, signed(body), body, NOW, Seen())
    assert (result.status, result.code) == (422, "too_deep")
    assert result.reason == "the body is nested more than 32 levels deep (limit 32)"


def test_schema_reason_names_the_path():
    body = b'{"action": "buy", "price": "cheap"}'
    result = verify_signal(hmac_config(), signed(body), body, NOW, Seen())
    assert result.reason.startswith("price: ") and "number" in result.reason


def test_passphrase_mode_accepts_and_strips_the_passphrase():
    cfg = SignalSourceConfig(name="tv", passphrase=PASS, schema=SCHEMA)
    body = json.dumps({"passphrase": PASS, "action": "buy", "price": 2, "id": "tv-1"}).encode()
    seen = Seen()
    result = verify_signal(cfg, {"Content-Type": "text/plain"}, body, NOW, seen)
    assert isinstance(result, Accepted) and result.mode == "passphrase"
    assert "passphrase" not in result.signal.payload and result.signal.signal_id == "tv-1"
    assert seen.calls == [("tv", "tv-1", NOW, 300.0)]
    assert verify_signal(cfg, {}, body, NOW + 10, seen).code == "replayed"


def test_passphrase_mode_without_id_dedups_on_the_payload_hash_with_dedup_body():
    cfg = SignalSourceConfig(name="tv", passphrase=PASS, schema=SCHEMA, dedup_window=300.0)
    body = json.dumps({"passphrase": PASS, "action": "buy", "price": 2}).encode()
    seen = Seen()
    first = verify_signal(cfg, {}, body, NOW, seen)
    assert first.signal.signal_id.startswith("body:")
    assert verify_signal(cfg, {}, body, NOW + 299, seen).code == "replayed"
    assert isinstance(verify_signal(cfg, {}, body, NOW + 301, seen), Accepted)
    # the id is a hash of the payload without the passphrase (nothing derived from the secret)
    same_payload_other_pass = SignalSourceConfig(name="tv2", passphrase="another-pass", schema=SCHEMA)
    body2 = json.dumps({"passphrase": "another-pass", "action": "buy", "price": 2}).encode()
    assert verify_signal(same_payload_other_pass, {}, body2, NOW, Seen()).signal.signal_id == first.signal.signal_id


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"passphrase": "nope", "action": "buy", "price": 2}, "wrong_passphrase"),
        ({"passphrase": 123, "action": "buy", "price": 2}, "wrong_passphrase"),
        ({"action": "buy", "price": 2}, "missing_credentials"),
    ],
)
def test_passphrase_failures_are_401_and_never_echo_the_secret(payload, code):
    cfg = SignalSourceConfig(name="tv", passphrase=PASS)
    result = verify_signal(cfg, {}, json.dumps(payload).encode(), NOW, Seen())
    assert (result.status, result.code) == (401, code)
    assert PASS not in result.reason and "nope" not in result.reason


def test_source_with_both_modes_and_signature_on_passphrase_only_source():
    both = SignalSourceConfig(name="b", secret=SECRET, passphrase=PASS)
    assert isinstance(verify_signal(both, signed(BODY), BODY, NOW, Seen()), Accepted)
    body = json.dumps({"passphrase": PASS, "x": 1}).encode()
    assert isinstance(verify_signal(both, {}, body, NOW, Seen()), Accepted)
    # a passphrase sent alongside a valid signature is still stripped
    signed_with_pass = verify_signal(both, signed(body), body, NOW, Seen())
    assert "passphrase" not in signed_with_pass.signal.payload
    only_pass = SignalSourceConfig(name="p", passphrase=PASS)
    assert verify_signal(only_pass, signed(BODY), BODY, NOW, Seen()).code == "signature_not_accepted"


def test_config_validation_and_repr_hides_secrets():
    with pytest.raises(ValueError, match="needs a secret or a passphrase"):
        SignalSourceConfig(name="x")
    with pytest.raises(ValueError, match="invalid payload schema"):
        SignalSourceConfig(name="x", secret=SECRET, schema={"type": 12})
    text = repr(SignalSourceConfig(name="x", secret=SECRET, passphrase=PASS))
    assert SECRET not in text and PASS not in text


def test_load_secret_from_env_and_file(tmp_path):
    assert load_secret(env="HOOK", environ={"HOOK": "  abc \n"}) == "abc"
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    assert load_secret(file=path) == "from-file"
    with pytest.raises(SecretError, match="HOOK is not set"):
        load_secret(env="HOOK", environ={})
    with pytest.raises(SecretError, match="is empty"):
        load_secret(env="HOOK", environ={"HOOK": " "})
    with pytest.raises(SecretError, match="cannot read secret file"):
        load_secret(file=tmp_path / "missing")
    with pytest.raises(SecretError, match="exactly one"):
        load_secret(env="A", file=path)


def test_from_settings_loads_both_secrets(tmp_path):
    (tmp_path / "pass").write_text(PASS)
    settings = SimpleNamespace(
        name="tv",
        secret_env="TV_SECRET",
        secret_file=None,
        passphrase_env=None,
        passphrase_file=str(tmp_path / "pass"),
        timestamp_window=120.0,
        max_body_bytes=1024,
        dedup_window=None,
    )
    cfg = SignalSourceConfig.from_settings(settings, SCHEMA, environ={"TV_SECRET": SECRET})
    assert (cfg.secret, cfg.passphrase, cfg.timestamp_window, cfg.max_body_bytes) == (SECRET, PASS, 120.0, 1024)


# De-duplication of signals without an id is opt-in per source (`dedup: body` with its
# `dedup_window`): a static TradingView alert that fires twice in a few minutes sends the same
# body twice, and both are meant. Signals with an id are de-duplicated by it, always; a signed
# request replayed as captured is refused, always.

ALERT = json.dumps({"passphrase": PASS, "action": "buy", "price": 2}).encode()


def test_a_passphrase_source_acts_on_every_repeat_of_an_alert_without_id_by_default():
    cfg = SignalSourceConfig(name="tv", passphrase=PASS)
    seen = Seen()
    results = [verify_signal(cfg, {}, ALERT, NOW + delay, seen) for delay in (0, 1, 60, 299)]
    assert all(isinstance(r, Accepted) for r in results)
    assert {r.signal.signal_id for r in results} == {results[0].signal.signal_id}  # the payload's hash
    assert seen.calls == []  # nothing remembered: nothing to refuse


def test_an_id_is_still_de_duplicated_without_dedup_body():
    cfg = SignalSourceConfig(name="tv", passphrase=PASS)
    body = json.dumps({"passphrase": PASS, "action": "buy", "id": "tv-1"}).encode()
    seen = Seen()
    assert isinstance(verify_signal(cfg, {}, body, NOW, seen), Accepted)
    assert verify_signal(cfg, {}, body, NOW + 10, seen).code == "replayed"


def test_dedup_body_refuses_a_repeat_within_its_window():
    cfg = SignalSourceConfig(name="tv", passphrase=PASS, dedup_window=600.0)
    seen = Seen()
    assert isinstance(verify_signal(cfg, {}, ALERT, NOW, seen), Accepted)
    refused = verify_signal(cfg, {}, ALERT, NOW + 599, seen)
    assert (refused.status, refused.code) == (409, "replayed") and "dedup: body" in refused.reason
    assert isinstance(verify_signal(cfg, {}, ALERT, NOW + 601, seen), Accepted)
    other = json.dumps({"passphrase": PASS, "action": "sell", "price": 2}).encode()
    assert isinstance(verify_signal(cfg, {}, other, NOW + 602, seen), Accepted)


def test_signed_requests_keep_replay_protection_and_may_opt_in_to_body_dedup():
    body = b'{"action": "buy", "price": 2}'
    plain = SignalSourceConfig(name="bot", secret=SECRET)
    seen = Seen()
    assert isinstance(verify_signal(plain, signed(body, NOW), body, NOW, seen), Accepted)
    assert verify_signal(plain, signed(body, NOW), body, NOW + 1, seen).code == "replayed"  # the captured request
    assert isinstance(verify_signal(plain, signed(body, NOW + 60), body, NOW + 60, seen), Accepted)  # sent again
    deduped = SignalSourceConfig(name="bot2", secret=SECRET, dedup_window=300.0)
    seen = Seen()
    assert isinstance(verify_signal(deduped, signed(body, NOW), body, NOW, seen), Accepted)
    assert verify_signal(deduped, signed(body, NOW + 60), body, NOW + 60, seen).code == "replayed"


def test_the_engine_config_reads_dedup_and_its_window():
    config = parse_config({"signals": {
        "tv": {"passphrase_env": "TV", "dedup": "body", "dedup_window": "10m"},
        "tv5": {"passphrase_env": "TV", "dedup": "body", "timestamp_window": "2m"},
        "bot": {"secret_env": "BOT"},
        "off": {"passphrase_env": "TV", "dedup": "none", "dedup_window": "10m"},
    }})
    windows = {name: source.dedup_window for name, source in config.signals.items()}
    assert windows == {"tv": 600.0, "tv5": 120.0, "bot": None, "off": None}
    with pytest.raises(ConfigError, match="dedup"):
        parse_config({"signals": {"tv": {"passphrase_env": "TV", "dedup": "payload"}}})
    built = SignalSourceConfig.from_settings(config.signals["tv"], environ={"TV": PASS})
    assert built.dedup_window == 600.0
