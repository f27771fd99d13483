"""Authenticate and validate one signal POSTed to `/signals/{source}` (pure: no I/O, no clock).

Two ways for a sender to prove itself, per source:

HMAC (preferred)
    X-Timestamp: <Unix seconds>
    X-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + raw_body)>
    X-Signal-Id: <optional id; else the payload's `id` field>
  The timestamp is bound into the MAC (as Stripe and Slack do), so a captured request
  cannot be replayed with a fresh timestamp; it must lie within `timestamp_window` of
  our clock. Replays inside the window are caught by de-duplication: every accepted
  request records its MAC-derived id (`mac:<hex>`), and the declared id as well when
  there is one, for 2 x window (the longest a timestamp stays acceptable).

Passphrase (senders that cannot set headers, e.g. TradingView alerts)
  The JSON body carries `"passphrase": "..."`; it is compared in constant time and
  removed from the payload before anything else sees it. With no timestamp to bound a
  replay, the payload's id is de-duplicated for one window.

A signal without an id is acted on every time by default: a static TradingView alert that
fires twice in a few minutes sends the same body twice, and both are meant. A source with
`dedup: body` refuses a payload (without its passphrase) that repeats an accepted one within
`dedup_window` instead.

Checks run in this order, each failure a `Rejected` with its own code:
size (413), authentication (401), timestamp window (401), JSON object (400), id (400),
schema (422), replay (409). Only a signal that passes everything is recorded as seen.
Secrets never appear in a repr, a reason or an exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import jsonschema

from rules_engine.core.events import Signal
from rules_engine.secret_reader import load_secret
from rules_engine.service.signal_body import BodyProblem, parse_body

if TYPE_CHECKING:
    from rules_engine.config import SignalSourceSettings

SIGNATURE_HEADER = "x-signature"
TIMESTAMP_HEADER = "x-timestamp"
SIGNAL_ID_HEADER = "x-signal-id"
PASSPHRASE_FIELD = "passphrase"
MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 300

_TIMESTAMP = re.compile(r"^\d{1,15}(\.\d{1,9})?$")
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")

SeenFn = Callable[[str, str, float, float], bool]
"""`seen(source, signal_id, now, ttl) -> bool`: True if the id was already recorded for this
source within its ttl; otherwise record it (for `ttl` seconds) and return False.
`StateStore.seen_signal` has exactly this shape."""


@dataclass(frozen=True)
class SignalSourceConfig:
    """One signal source. At least one of `secret` (HMAC key) and `passphrase` is required;
    a configured passphrase enables passphrase mode for that source."""

    name: str
    secret: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    # A JSON object: jsonschema refuses any other mapping as a schema.
    schema: dict[str, Any] | None = field(default=None, repr=False)
    max_body_bytes: int = 65536
    timestamp_window: float = 300.0
    id_field: str = "id"
    dedup_window: float | None = None  # `dedup: body`: refuse a repeated payload without an id this long
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.secret and not self.passphrase:
            raise ValueError(f"signal source {self.name!r} needs a secret or a passphrase")
        if self.max_body_bytes <= 0:
            raise ValueError(f"signal source {self.name!r}: max_body_bytes must be positive")
        if self.timestamp_window <= 0:
            raise ValueError(f"signal source {self.name!r}: timestamp_window must be positive")
        if self.dedup_window is not None and self.dedup_window <= 0:
            raise ValueError(f"signal source {self.name!r}: dedup_window must be positive")
        if self.schema is not None:
            cls = jsonschema.validators.validator_for(self.schema)
            try:
                cls.check_schema(self.schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"signal source {self.name!r}: invalid payload schema: {exc.message}") from None
            # Payload numbers arrive as Decimal; the schema's must match (Decimal % float fails).
            object.__setattr__(self, "_validator", cls(_floats_to_decimal(self.schema)))

    @property
    def replay_ttl(self) -> float:
        """How long an HMAC-mode id must be remembered: a timestamp stays acceptable from
        `window` before to `window` after it, so 2 x window."""
        return 2 * self.timestamp_window

    @classmethod
    def from_settings(
        cls,
        settings: SignalSourceSettings,
        schema: dict[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SignalSourceConfig:
        """Build from the engine config's `SignalSourceSettings`, loading its secrets."""
        secret = passphrase = None
        if settings.secret_env or settings.secret_file:
            secret = load_secret(settings.secret_env, settings.secret_file, environ)
        if settings.passphrase_env or settings.passphrase_file:
            passphrase = load_secret(settings.passphrase_env, settings.passphrase_file, environ)
        return cls(
            name=settings.name,
            secret=secret,
            passphrase=passphrase,
            schema=schema,
            max_body_bytes=settings.max_body_bytes,
            timestamp_window=settings.timestamp_window,
            dedup_window=settings.dedup_window,
        )


@dataclass(frozen=True)
class Accepted:
    signal: Signal
    mode: str  # "hmac" | "passphrase"


@dataclass(frozen=True)
class Rejected:
    """Why a request was refused: the HTTP status, a stable machine code and a readable reason."""

    status: int
    code: str
    reason: str
    signal_id: str = ""
    authenticated: bool = False  # refused after the sender proved who it is (else: a stranger)


def unknown_source(source: str) -> Rejected:
    shown = source if len(source) <= 64 else source[:64] + "..."
    return Rejected(404, "unknown_source", f"no signal source named {shown!r} is configured")


def body_too_large(limit: int) -> Rejected:
    return Rejected(413, "body_too_large", f"body exceeds this source's limit of {limit} bytes")


def signature_hex(secret: str, timestamp: str, raw_body: bytes) -> str:
    """hex HMAC-SHA256(secret, f"{timestamp}." + raw_body): what senders put after `sha256=`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()


def verify_signal(
    config: SignalSourceConfig,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float,
    seen: SeenFn,
) -> Accepted | Rejected:
    """Authenticate, parse, validate and de-duplicate one request for `config`'s source."""
    if len(raw_body) > config.max_body_bytes:
        return body_too_large(config.max_body_bytes)
    lowered = {k.lower(): v for k, v in headers.items()}
    if SIGNATURE_HEADER in lowered or TIMESTAMP_HEADER in lowered or not config.passphrase:
        return _verify_hmac(config, lowered, raw_body, now, seen)
    return _verify_passphrase(config, raw_body, now, seen)


def _authenticated(result: Accepted | Rejected) -> Accepted | Rejected:
    return dataclasses.replace(result, authenticated=True) if isinstance(result, Rejected) else result


def _verify_hmac(
    config: SignalSourceConfig, headers: Mapping[str, str], raw_body: bytes, now: float, seen: SeenFn
) -> Accepted | Rejected:
    if not config.secret:
        return Rejected(401, "signature_not_accepted", "this source takes a passphrase in the body, not a signature")
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if signature is None:
        return Rejected(401, "missing_signature", "missing X-Signature header (sha256=<hex HMAC-SHA256>)")
    if timestamp is None:
        return Rejected(401, "missing_timestamp", "missing X-Timestamp header (Unix seconds)")
    timestamp = timestamp.strip()
    if not _TIMESTAMP.match(timestamp):
        return Rejected(401, "invalid_timestamp", "X-Timestamp must be Unix seconds, e.g. 1718000000")
    match = _SIGNATURE.match(signature.strip())
    if match is None:
        return Rejected(401, "invalid_signature", "X-Signature must be sha256=<64 hex digits>")
    expected = signature_hex(config.secret, timestamp, raw_body)
    if not hmac.compare_digest(expected, match.group(1).lower()):
        return Rejected(401, "invalid_signature", "signature does not match the body and timestamp")
    return _authenticated(_check_signed(config, headers, raw_body, now, seen, timestamp, expected))


def _check_signed(
    config: SignalSourceConfig, headers: Mapping[str, str], raw_body: bytes, now: float, seen: SeenFn,
    timestamp: str, expected: str,
) -> Accepted | Rejected:
    """The checks after the signature matched."""
    skew = now - float(timestamp)
    if skew > config.timestamp_window:
        return Rejected(401, "stale_timestamp",
                        f"timestamp is {skew:.0f}s old; the window is {config.timestamp_window:.0f}s")
    if -skew > config.timestamp_window:
        return Rejected(
            401,
            "future_timestamp",
            f"timestamp is {-skew:.0f}s in the future; the window is {config.timestamp_window:.0f}s "
            "(X-Timestamp is Unix seconds, not milliseconds)",
        )
    payload = _parse_object(raw_body)
    if isinstance(payload, Rejected):
        return payload
    if config.passphrase:
        payload.pop(PASSPHRASE_FIELD, None)
    declared = headers.get(SIGNAL_ID_HEADER)
    declared_id = _declared_id(config, declared, payload)
    if isinstance(declared_id, Rejected):
        return declared_id
    mac_id = f"mac:{expected[:32]}"
    signal_id = declared_id or mac_id
    problem = _schema_problem(config, payload)
    if problem is not None:
        return Rejected(422, "schema_violation", problem, signal_id)
    # The X-Signal-Id header is not covered by the MAC, so the MAC-derived id is always
    # recorded too: a captured request replayed under a new header id is still caught.
    for key in (declared_id, mac_id):
        if key and seen(config.name, key, now, config.replay_ttl):
            reason = f"signal {signal_id!r} was already received"
            if key != signal_id:
                reason = ("this signed request (the same timestamp, body and signature) was already received; "
                          f"a new id ({signal_id!r}) does not make it a new signal: sign a new request")
            return Rejected(409, "replayed", reason, signal_id)
    if not declared_id and _repeated_body(config, payload, now, seen):
        return Rejected(409, "replayed", "the same payload was already received (dedup: body)", signal_id)
    return Accepted(Signal(source=config.name, payload=payload, time=now, signal_id=signal_id), "hmac")


def _verify_passphrase(config: SignalSourceConfig, raw_body: bytes, now: float, seen: SeenFn) -> Accepted | Rejected:
    payload = _parse_object(raw_body)
    if isinstance(payload, Rejected):
        return payload
    given = payload.pop(PASSPHRASE_FIELD, None)
    if given is None:
        return Rejected(
            401,
            "missing_credentials",
            'send X-Timestamp and X-Signature headers, or "passphrase" in the JSON body',
        )
    assert config.passphrase is not None
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), config.passphrase.encode()):
        return Rejected(401, "wrong_passphrase", "the passphrase does not match")
    return _authenticated(_check_with_passphrase(config, payload, now, seen))


def _check_with_passphrase(config: SignalSourceConfig, payload: dict[str, Any], now: float,
                           seen: SeenFn) -> Accepted | Rejected:
    """The checks after the passphrase matched."""
    declared_id = _declared_id(config, None, payload)
    if isinstance(declared_id, Rejected):
        return declared_id
    signal_id = declared_id or _body_id(payload)
    problem = _schema_problem(config, payload)
    if problem is not None:
        return Rejected(422, "schema_violation", problem, signal_id)
    if declared_id and seen(config.name, signal_id, now, config.timestamp_window):
        return Rejected(409, "replayed", f"signal {signal_id!r} was already received", signal_id)
    if not declared_id and _repeated_body(config, payload, now, seen):
        return Rejected(409, "replayed", "the same payload was already received (dedup: body)", signal_id)
    return Accepted(Signal(source=config.name, payload=payload, time=now, signal_id=signal_id), "passphrase")


def _body_id(payload: Mapping[str, Any]) -> str:
    """The id of a signal without one: a hash of its payload (without the passphrase)."""
    return "body:" + hashlib.sha256(_canonical(payload)).hexdigest()[:32]


def _repeated_body(config: SignalSourceConfig, payload: Mapping[str, Any], now: float, seen: SeenFn) -> bool:
    """With `dedup: body`, whether an accepted signal had this payload within `dedup_window`
    (recording it otherwise); without, never."""
    if config.dedup_window is None:
        return False
    return seen(config.name, _body_id(payload), now, config.dedup_window)


def _parse_object(raw_body: bytes) -> dict[str, Any] | Rejected:
    """The body as a JSON object within `signal_body`'s limits (depth, values, number size)."""
    parsed = parse_body(raw_body)
    if isinstance(parsed, BodyProblem):
        return Rejected(parsed.status, parsed.code, parsed.reason)
    return parsed


def _declared_id(config: SignalSourceConfig, header: str | None, payload: Mapping[str, Any]) -> str | Rejected:
    """The sender's id: the X-Signal-Id header, else the payload's id field, else ""."""
    value: Any = header if header is not None else payload.get(config.id_field)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return Rejected(400, "invalid_id", f"signal id ({config.id_field!r}) must be a string or an integer")
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH or not text.isprintable():
        return Rejected(400, "invalid_id", f"signal id must be 1-{MAX_ID_LENGTH} printable characters")
    return text


def _schema_problem(config: SignalSourceConfig, payload: Mapping[str, Any]) -> str | None:
    if config._validator is None:
        return None
    try:
        error = jsonschema.exceptions.best_match(config._validator.iter_errors(payload))
    except (TypeError, ArithmeticError) as exc:
        return _clip(f"(payload): cannot be checked against the schema: {type(exc).__name__}")
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path)
    return _clip(f"{path or '(payload)'}: {_violation(error)}")


_RULES_QUOTING_VALUES = frozenset({"enum", "const", "not", "anyOf", "oneOf", "allOf", "if", "then", "else",
                                   "contains", "propertyNames", "dependentSchemas", "unevaluatedProperties"})


def _violation(error: jsonschema.ValidationError) -> str:
    """What the payload breaks, in the schema's words: never a value from the payload (the
    reason goes back to the sender and into the audit log)."""
    rule, expected = str(error.validator), error.validator_value
    if rule == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"must be of type {' or '.join(map(str, kinds))}"
    if rule in ("required", "additionalProperties", "dependentRequired"):
        return error.message  # names keys (from the schema, or the sender's own keys), not values
    if rule in _RULES_QUOTING_VALUES:
        return f"does not satisfy the schema's {rule!r} rule"
    if isinstance(expected, (int, float, Decimal)) and not isinstance(expected, bool):
        return f"must satisfy {rule}: {expected}"
    return f"must satisfy {rule}: {_clip(json.dumps(expected, default=str))}"


def _floats_to_decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _floats_to_decimal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_to_decimal(v) for v in value]
    return value


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 3] + "..."
