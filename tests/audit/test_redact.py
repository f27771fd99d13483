import io
import logging
from urllib.parse import quote, quote_plus

import pytest

from rules_engine.redact import MASK, RedactingFilter, Redactor, is_sensitive_key


@pytest.mark.parametrize(
    "key",
    ["API-Key", "API-Sign", "Authent", "APIKey", "apikey", "api_secret", "webhook_secret", "ws_token",
     "Passphrase", "password", "signature", "X-Signature", "otp", "OTP", "Authorization", "Cookie"],
)
def test_sensitive_keys(key):
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["footprint", "nonce", "pair", "volume", "key_fingerprint", "signal_id", "txid"])
def test_ordinary_keys_are_kept(key):
    assert not is_sensitive_key(key)


def test_values_of_sensitive_keys_are_masked_at_any_depth():
    data = {
        "headers": {"API-Key": "pub", "API-Sign": "sig==", "Content-Type": "json"},
        "list": [{"Authent": "x", "ok": 1}, ("passphrase", {"password": ["a", "b"]})],
        "otp": 123456,
        "authenticated": True,
        "secret": None,
    }
    out = Redactor().redact(data)
    assert out["headers"] == {"API-Key": MASK, "API-Sign": MASK, "Content-Type": "json"}
    assert out["list"][0] == {"Authent": MASK, "ok": 1}
    assert out["list"][1] == ("passphrase", {"password": MASK})
    assert out["otp"] == MASK
    assert out["authenticated"] is True and out["secret"] is None
    assert data["headers"]["API-Key"] == "pub", "the input is not modified"


def test_registered_secrets_are_masked_inside_any_string_key_or_integer():
    redactor = Redactor()
    secret = "kQH5HW/8p1uGOVjbgWA7Fun+AmGO8=="
    redactor.register(secret)
    redactor.register("424242")
    data = {
        "body": f"nonce=1&x={quote_plus(secret)}&y={quote(secret, safe='')}",
        "text": f"prefix{secret}suffix",
        secret: "as a key",
        "nested": [[{"deep": f"..{secret}.."}]],
        "code": 424242,
        "raw": secret.encode(),
    }
    out = redactor.redact(data)
    flat = repr(out)
    assert secret not in flat and quote_plus(secret) not in flat and quote(secret, safe="") not in flat
    assert "424242" not in flat and out["code"] == MASK
    assert out["text"] == f"prefix{MASK}suffix"


def test_longer_secret_wins_over_a_registered_prefix():
    redactor = Redactor()
    redactor.register("abcd")
    redactor.register("abcdefgh")
    assert redactor.redact_text("xabcdefghx") == f"x{MASK}x"


@pytest.mark.parametrize(
    "text",
    ["API-Key: PUBKEY123", "api_key=PUBKEY123&nonce=1", 'Authorization: Bearer PUBKEY123', '{"token": "PUBKEY123"}',
     "webhook_secret=PUBKEY123"],
)
def test_credential_fields_in_free_text(text):
    out = Redactor().redact_text(text)
    assert "PUBKEY123" not in out and MASK in out


def test_register_rejects_empty_and_repr_hides_secrets():
    redactor = Redactor()
    with pytest.raises(ValueError):
        redactor.register("")
    redactor.register("topsecretvalue")
    assert "topsecretvalue" not in repr(redactor)


def test_logging_filter_masks_message_args_and_traceback():
    redactor = Redactor()
    redactor.register("s3cr3t-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("test_redact_filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sending %s", {"API-Key": "abc", "body": "x=s3cr3t-value"})
        try:
            raise RuntimeError("boom s3cr3t-value")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "s3cr3t-value" not in text
    assert "boom ***" in text and "RuntimeError" in text


def test_redact_json_is_redact_of_to_jsonable_in_one_walk():
    import dataclasses
    import enum
    from decimal import Decimal

    from rules_engine.audit.records import to_jsonable
    from rules_engine.redact import Redactor

    class Side(enum.Enum):
        BUY = "buy"

    @dataclasses.dataclass
    class Point:
        x: Decimal
        token: str

    redactor = Redactor()
    redactor.register("s3cr3t-value")
    redactor.register("987654321")
    samples = [
        "plain", "has s3cr3t-value inside", 987654321, 12, True, None, 1.5, float("inf"), Decimal("1E+1"),
        {"a": 1, "b": [1, 2.5, "s3cr3t-value", (3, "x")], "api_key": "abc", "token": None, "secret": True,
         "nested": {"price": Decimal("70100.0"), "side": Side.BUY, "point": Point(Decimal("0.1"), "t")},
         "nan": float("nan"), 5: "int key", "authorization": Decimal("1")},
        [{"x": 987654321}, ("s3cr3t-value",), {1, 2}],
        Point(Decimal("2"), "s3cr3t-value"),
    ]
    for sample in samples:
        assert redactor.redact_json(sample, to_jsonable) == redactor.redact(to_jsonable(sample))


def test_an_integer_is_masked_in_one_walk_only_once_a_secret_made_of_digits_is_registered():
    from rules_engine.audit.records import to_jsonable

    redactor = Redactor()
    redactor.register("kQH5HW/8p1uGOVjbgWA7Fun+AmGO8==")  # no digits-only form: integers cannot hold it
    data = {"seq": 9424242, "list": [424242, {"n": -424242}]}
    assert redactor.redact_json(data, to_jsonable) == data
    redactor.register("424242")
    assert redactor.redact_json(data, to_jsonable) == {"seq": MASK, "list": [MASK, {"n": MASK}]}
    assert redactor.redact_json(424242, to_jsonable) == MASK and redactor.redact_json(7, to_jsonable) == 7
def test_many_secrets_one_a_prefix_of_another_are_each_masked_whole() -> None:
    """The secrets' pattern is a trie (a worker registers hundreds of keys): every secret is
    found, the longer one where one is a prefix of another, and text around it is kept."""
    redactor = Redactor()
    secrets = [f"key{n:04d}Zq9/+=" for n in range(500)]
    for secret in secrets:
        redactor.register(secret)
    redactor.register("abc123")
    redactor.register("abc123456")
    assert redactor.redact_text("x abc123456 y abc1234 z") == "x *** y ***4 z"
    text = " | ".join(secrets[::97])
    assert redactor.redact_text(text) == " | ".join("***" for _ in secrets[::97])
    assert redactor.redact_text("key0001Zq9") == "key0001Zq9"  # a part of a secret is not one
    assert redactor.redact_text("key0001Zq9%2F%2B%3D") == "***"  # its URL-encoded form is
    redactor.register("late-secret-value")  # registered after use: the next use sees it
    assert redactor.redact({"note": "late-secret-value"}) == {"note": "***"}
