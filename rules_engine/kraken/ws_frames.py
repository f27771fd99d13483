"""Kraken WebSocket ticker frames: pure parsing (text in, ticks and control events out).

No sockets, no clock: the caller passes the receive time. Three dialects share one shape:

- `V2Dialect`      spot v2 (`wss://ws.kraken.com/v2`), symbols `BTC/USD` on the wire;
- `V1Dialect`      spot v1 (`wss://ws.kraken.com`), symbols `XBT/USD` (wsname), array ticker frames;
- `FuturesDialect` futures (`wss://futures.kraken.com/ws/v1`), product ids (`PF_XBTUSD`).

Each dialect parses a frame into a `FrameResult` (ticks + control events) and builds the
subscribe / unsubscribe / ping requests in its own wire form. Ticks carry canonical
symbols: the spot altname (`XBTUSD`) or the upper-case futures product id.

Parsing never raises: a frame that is not valid JSON, has the wrong shape, or carries a
price that is not a finite positive decimal (or a timestamp that does not parse) becomes
one `Malformed` event and yields no tick. A frame is used whole or not at all.

Numbers are decoded from their JSON text straight to `Decimal` (the decoder keeps the
text, `Decimal(text)` is exact), so `79874.0`, `"42694.60000"` and `5.494e-6` all arrive
as the decimal Kraken wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from rules_engine.core.events import Tick, make_tick
from rules_engine.pairs import PairRegistry, default_registry

EXCERPT_CHARS = 200


# ---------------------------------------------------------------------------------------
# Control events


@dataclass(frozen=True)
class SubscribeAck:
    """Kraken's answer to a (un)subscribe request for one symbol.

    `symbol` is canonical (`XBTUSD`, `PF_XBTUSD`) when known, else the name Kraken echoed
    (`NOPE/USD`). `action` is "subscribe" or "unsubscribe"."""

    symbol: str
    ok: bool
    error: str | None = None
    action: str = "subscribe"


@dataclass(frozen=True)
class Heartbeat:
    """The server is alive (v2 heartbeat channel, v1 heartbeat event, futures heartbeat feed)."""


@dataclass(frozen=True)
class Status:
    """Server status: v2 `status` channel, v1 `systemStatus`, futures `info` banner.

    `system` is online / cancel_only / maintenance / post_only (None in the futures banner)."""

    system: str | None
    version: str | None = None


@dataclass(frozen=True)
class Pong:
    """Answer to an application-level ping."""

    req_id: int | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An error that names no symbol (`Malformed request`, futures `alert`, v1 `error`)."""

    message: str


@dataclass(frozen=True)
class Ignored:
    """A well-formed frame this feed does not use (another channel, a heartbeat-feed ack)."""

    what: str


@dataclass(frozen=True)
class Malformed:
    """A frame that failed validation; `excerpt` is the start of the raw text."""

    reason: str
    excerpt: str


@dataclass(frozen=True)
class UnknownPair(Malformed):
    """A well-formed ticker for a pair the AssetPairs snapshot does not list: malformed to a
    live feed (it never subscribed to it), skipped by a replay unless a rule needs the pair."""

    pair: str = ""


ControlEvent = SubscribeAck | Heartbeat | Status | Pong | ErrorReply | Ignored | Malformed

HEARTBEAT = Heartbeat()


class FrameResult(NamedTuple):
    """What one frame yields: ticks in frame order, then control events."""

    ticks: tuple[Tick, ...] = ()
    events: tuple[ControlEvent, ...] = ()


_HEARTBEAT_RESULT = FrameResult((), (HEARTBEAT,))


# `FrameResult((ticks, events))` without NamedTuple's Python-level __new__ (hot path only).
_new_result = tuple.__new__


_make_tick = make_tick


class _Bad(Exception):
    """Internal: validation failed with this reason."""


class _Unknown(_Bad):
    """Internal: a ticker for a pair the registry does not know."""

    def __init__(self, wire: str):
        super().__init__(f"ticker for unknown pair {wire[:40]!r}")
        self.wire = wire


# ---------------------------------------------------------------------------------------
# Field validation

_DIGITS = frozenset("0123456789")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
# Keep number text as text; `Decimal(text)` later is exact and cheaper than float + Decimal.
_DECODER = json.JSONDecoder(parse_float=str)
_decode = _DECODER.decode
_raw_decode = _DECODER.raw_decode


def _utf8(raw: Any) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, TypeError) as exc:
        raise _Bad(f"not UTF-8 text: {exc}") from None


def _price(value: Any, name: str) -> Decimal:
    """A finite, positive decimal from JSON number text, a numeric string or an int."""
    # Fast path for the usual "60000.1": ASCII, starts and ends with a digit, no "_" (which
    # rules out the whitespace, signs, NaN/Infinity and digit separators Decimal() accepts).
    if type(value) is str and value[-1:] in _DIGITS and value[0] in _DIGITS and value.isascii() and "_" not in value:
        try:
            price = Decimal(value)
        except InvalidOperation:
            raise _Bad(f"{name} is not a decimal number: {value[:40]!r}") from None
        if price:
            return price
        raise _Bad(f"{name} must be positive, got {value}")
    return _other_price(value, name)


def _other_price(value: Any, name: str) -> Decimal:
    kind = type(value)
    if kind is int:
        if value > 0:
            return Decimal(value)
        raise _Bad(f"{name} must be positive, got {value}")
    if kind is not str:
        raise _Bad(f"{name} is not a number: {kind.__name__}")
    if _NEGATIVE_NUMBER(value):
        raise _Bad(f"{name} must be positive, got {value[:40]}")
    raise _Bad(f"{name} is not a decimal number: {value[:40]!r}")


def _last_bid_ask(source: dict[str, Any], symbol: str) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """The `last`, `bid`, `ask` prices of a v2 or futures ticker object; at least one is required."""
    last = source.get("last")
    bid = source.get("bid")
    ask = source.get("ask")
    if last is not None:
        last = _price(last, "last")
    if bid is not None:
        bid = _price(bid, "bid")
    if ask is not None:
        ask = _price(ask, "ask")
    if last is None and bid is None and ask is None:
        raise _Bad(f"ticker for {symbol} has no last, bid or ask")
    return last, bid, ask


def _rfc3339(value: Any, name: str) -> float:
    if type(value) is not str:
        raise _Bad(f"{name} is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{name} is not an RFC 3339 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise _Bad(f"{name} has no time zone: {value[:40]!r}")
    return moment.timestamp()


def _epoch_ms(value: Any, name: str) -> float:
    if type(value) is not int or value <= 0:
        raise _Bad(f"{name} is not a positive integer of milliseconds")
    return value / 1000.0


def _text(value: Any, name: str) -> str:
    if type(value) is not str or not value:
        raise _Bad(f"{name} is missing or not a string")
    return value


def _excerpt(text: Any) -> str:
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    return str(text)[:EXCERPT_CHARS]


def _malformed(reason: str, text: Any) -> FrameResult:
    return FrameResult((), (Malformed(reason, _excerpt(text)),))


def _json_request(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# Dialects


class Dialect:
    """One Kraken ticker protocol: frame parsing plus request building."""

    name: str
    market: str

    def url(self, endpoints: Any) -> str:
        """The WebSocket URL for this dialect from `KrakenEndpoints`."""
        raise NotImplementedError

    def canonical(self, name: str) -> str:
        """The canonical symbol for a user-supplied name; ValueError if unknown."""
        raise NotImplementedError

    def parse(self, text: str | bytes, received_at: float) -> FrameResult:
        """Parse one frame; never raises."""
        try:
            if type(text) is not str:
                text = _utf8(text)
            try:
                frame, end = _raw_decode(text)  # the fast path: no whitespace handling
                if end != len(text):
                    raise ValueError
            except ValueError:
                frame = _decode(text)  # the full check, with the precise error
            return self._parse(frame, received_at)
        except (json.JSONDecodeError, RecursionError) as exc:
            return _malformed(f"invalid JSON: {exc}", text)
        except _Unknown as exc:
            return FrameResult((), (UnknownPair(str(exc), _excerpt(text), exc.wire),))
        except _Bad as exc:
            return _malformed(str(exc), text)
        except Exception as exc:  # a parser bug must not kill the feed: report it as malformed
            return _malformed(f"unexpected {type(exc).__name__}: {exc}", text)

    def _parse(self, frame: Any, received_at: float) -> FrameResult:
        raise NotImplementedError

    def connect_requests(self) -> list[str]:
        """Requests to send once on every new connection, before subscribing."""
        return []

    def subscribe_request(self, symbols: Iterable[str], req_id: int) -> str:
        return self._request("subscribe", symbols, req_id)

    def unsubscribe_request(self, symbols: Iterable[str], req_id: int) -> str:
        return self._request("unsubscribe", symbols, req_id)

    def _request(self, action: str, symbols: Iterable[str], req_id: int) -> str:
        """The dialect's ticker (un)subscribe request; `action` is subscribe or unsubscribe."""
        raise NotImplementedError

    def ping_request(self, req_id: int) -> str | None:
        """An application-level ping, or None where the dialect has none."""
        return None


class _SpotDialect(Dialect):
    market = "spot"

    def __init__(self, registry: PairRegistry | None = None):
        self.registry = registry or default_registry()
        self._altname_of: dict[str, str] = {}
        for pair in self.registry:
            self._altname_of.setdefault(self._wire_name(pair), pair.altname)
        self._wire_of = {pair.altname: self._wire_name(pair) for pair in self.registry}

    @staticmethod
    def _wire_name(pair: Any) -> str:
        raise NotImplementedError

    def canonical(self, name: str) -> str:
        pair = self.registry.get(name)
        if pair is None:
            raise ValueError(f"unknown Kraken spot pair {name!r}")
        return pair.altname

    def wire_symbol(self, symbol: str) -> str:
        """`XBTUSD` -> this dialect's wire name (`BTC/USD` for v2, `XBT/USD` for v1)."""
        return self._wire_of[self.canonical(symbol)]

    def _symbol(self, wire: str) -> str | None:
        altname = self._altname_of.get(wire)
        if altname is None:
            pair = self.registry.get(wire)
            altname = pair.altname if pair is not None else None
        return altname

    def _ack_symbol(self, wire: Any) -> str:
        if type(wire) is not str:
            raise _Bad("subscription answer has no symbol")
        return self._symbol(wire) or wire


class V2Dialect(_SpotDialect):
    """Spot WebSocket v2: JSON objects, `BTC/USD` symbols, RFC 3339 timestamps."""

    name = "v2"

    def __init__(self, registry: PairRegistry | None = None, event_trigger: str | None = None):
        super().__init__(registry)
        if event_trigger not in (None, "trades", "bbo"):
            raise ValueError(f"event_trigger must be 'trades' or 'bbo', not {event_trigger!r}")
        self.event_trigger = event_trigger

    @staticmethod
    def _wire_name(pair: Any) -> str:
        return pair.v2_symbol

    def url(self, endpoints: Any) -> str:
        return endpoints.ws_v2

    def _request(self, method: str, symbols: Iterable[str], req_id: int) -> str:
        params: dict[str, Any] = {"channel": "ticker", "symbol": [self.wire_symbol(s) for s in symbols]}
        if method == "subscribe" and self.event_trigger:
            params["event_trigger"] = self.event_trigger
        return _json_request({"method": method, "params": params, "req_id": req_id})

    def ping_request(self, req_id: int) -> str:
        return _json_request({"method": "ping", "req_id": req_id})

    def _parse(self, frame: Any, received_at: float) -> FrameResult:
        if type(frame) is not dict:
            raise _Bad("v2 frame is not a JSON object")
        channel = frame.get("channel")
        if channel == "ticker":
            data = frame.get("data")
            if type(data) is not list or not data:
                raise _Bad("ticker frame has no data list")
            if len(data) == 1:
                return _new_result(FrameResult, ((self._tick(data[0], received_at),), ()))
            return FrameResult(tuple([self._tick(entry, received_at) for entry in data]), ())
        if channel == "heartbeat":
            return _HEARTBEAT_RESULT
        if channel == "status":
            data = frame.get("data")
            if type(data) is not list or not data or type(data[0]) is not dict:
                raise _Bad("status frame has no data object")
            entry = data[0]
            system = entry.get("system")
            version = entry.get("version")
            return FrameResult((), (Status(_text(system, "status.system"), version if type(version) is str else None),))
        if channel is not None:
            return FrameResult((), (Ignored(f"channel {channel}"),))
        method = frame.get("method")
        if method in ("subscribe", "unsubscribe"):
            return FrameResult((), (self._ack(frame, method),))
        if method == "pong":
            req_id = frame.get("req_id")
            return FrameResult((), (Pong(req_id if type(req_id) is int else None),))
        if method is not None and frame.get("success") is False:
            return FrameResult((), (ErrorReply(str(frame.get("error") or f"{method} failed")),))
        if method is not None:
            return FrameResult((), (Ignored(f"method {method}"),))
        raise _Bad("v2 frame has neither channel nor method")

    def _tick(self, entry: Any, received_at: float) -> Tick:
        if type(entry) is not dict:
            raise _Bad("ticker data entry is not an object")
        wire = entry.get("symbol")
        if type(wire) is not str:
            raise _Bad("ticker entry has no symbol")
        symbol = self._altname_of.get(wire) or self._symbol(wire)
        if symbol is None:
            raise _Unknown(wire)
        get = entry.get  # `_last_bid_ask`, inline: this runs for every tick
        last, bid, ask = get("last"), get("bid"), get("ask")
        if last is not None:
            last = _price(last, "last")
        if bid is not None:
            bid = _price(bid, "bid")
        if ask is not None:
            ask = _price(ask, "ask")
        if last is None and bid is None and ask is None:
            raise _Bad(f"ticker for {symbol} has no last, bid or ask")
        stamp = get("timestamp")
        if stamp is not None:
            stamp = _rfc3339(stamp, "timestamp")
        return _make_tick(symbol, "spot", received_at, last, bid, ask, stamp)

    def _ack(self, frame: dict[str, Any], method: str) -> SubscribeAck:
        success = frame.get("success")
        if type(success) is not bool:
            raise _Bad(f"{method} answer has no boolean success")
        if success:
            result = frame.get("result")
            if type(result) is not dict:
                raise _Bad(f"{method} answer has no result")
            return SubscribeAck(self._ack_symbol(result.get("symbol")), True, None, method)
        error = frame.get("error")
        wire = frame.get("symbol")
        if wire is None and type(frame.get("result")) is dict:
            wire = frame["result"].get("symbol")
        if wire is None:
            raise _Bad(f"{method} error names no symbol: {str(error)[:80]}")
        return SubscribeAck(self._ack_symbol(wire), False, str(error or f"{method} failed"), method)


class V1Dialect(_SpotDialect):
    """Spot WebSocket v1: `[channelID, {a,b,c,...}, "ticker", "XBT/USD"]` arrays, events as objects."""

    name = "v1"

    @staticmethod
    def _wire_name(pair: Any) -> str:
        return pair.wsname

    def url(self, endpoints: Any) -> str:
        return endpoints.ws_v1

    def _request(self, event: str, symbols: Iterable[str], req_id: int) -> str:
        return _json_request(
            {
                "event": event,
                "pair": [self.wire_symbol(s) for s in symbols],
                "subscription": {"name": "ticker"},
                "reqid": req_id,
            }
        )

    def ping_request(self, req_id: int) -> str:
        return _json_request({"event": "ping", "reqid": req_id})

    def _parse(self, frame: Any, received_at: float) -> FrameResult:
        kind = type(frame)
        if kind is list:
            return self._array(frame, received_at)
        if kind is not dict:
            raise _Bad("v1 frame is neither an array nor an object")
        event = frame.get("event")
        if event == "heartbeat":
            return _HEARTBEAT_RESULT
        if event == "subscriptionStatus":
            return FrameResult((), (self._status(frame),))
        if event == "systemStatus":
            version = frame.get("version")
            status = Status(_text(frame.get("status"), "status"), version if type(version) is str else None)
            return FrameResult((), (status,))
        if event == "pong":
            req_id = frame.get("reqid")
            return FrameResult((), (Pong(req_id if type(req_id) is int else None),))
        if event == "error":
            return FrameResult((), (ErrorReply(str(frame.get("errorMessage") or "error")),))
        if type(event) is str:
            return FrameResult((), (Ignored(f"event {event}"),))
        raise _Bad("v1 object frame has no event")

    def _array(self, frame: list[Any], received_at: float) -> FrameResult:
        if len(frame) != 4:
            raise _Bad(f"v1 channel frame has {len(frame)} elements, expected 4")
        _, data, channel, wire = frame
        if channel != "ticker":
            if type(channel) is str:
                return FrameResult((), (Ignored(f"channel {channel}"),))
            raise _Bad("v1 channel frame has no channel name")
        if type(data) is not dict:
            raise _Bad("v1 ticker payload is not an object")
        if type(wire) is not str:
            raise _Bad("v1 ticker has no pair")
        symbol = self._symbol(wire)
        if symbol is None:
            raise _Unknown(wire)
        last, bid, ask = self._first(data, "c"), self._first(data, "b"), self._first(data, "a")
        if last is None and bid is None and ask is None:
            raise _Bad(f"ticker for {symbol} has no last, bid or ask")
        return _new_result(FrameResult, ((Tick(symbol, "spot", received_at, last, bid, ask),), ()))

    @staticmethod
    def _first(data: dict[str, Any], key: str) -> Decimal | None:
        field = data.get(key)
        if field is None:
            return None
        if type(field) is not list or not field:
            raise _Bad(f"ticker field {key!r} is not a non-empty array")
        return _price(field[0], f"{key}[0]")

    def _status(self, frame: dict[str, Any]) -> SubscribeAck:
        status = frame.get("status")
        symbol = self._ack_symbol(frame.get("pair"))
        if status == "subscribed":
            return SubscribeAck(symbol, True)
        if status == "unsubscribed":
            return SubscribeAck(symbol, True, None, "unsubscribe")
        if status == "error":
            return SubscribeAck(symbol, False, str(frame.get("errorMessage") or "subscription error"))
        raise _Bad(f"subscriptionStatus has unknown status {str(status)[:40]!r}")


class FuturesDialect(Dialect):
    """Futures WebSocket v1: flat JSON objects keyed by `feed` or `event`, product ids."""

    name = "futures"
    market = "futures"

    def url(self, endpoints: Any) -> str:
        return endpoints.futures_ws

    def canonical(self, name: str) -> str:
        symbol = name.strip().upper()
        if not symbol or not all(ch.isalnum() or ch == "_" for ch in symbol) or not symbol.isascii():
            raise ValueError(f"not a Kraken futures product id: {name!r}")
        return symbol

    def connect_requests(self) -> list[str]:
        # The futures server sends heartbeats only to clients subscribed to the heartbeat feed.
        return [_json_request({"event": "subscribe", "feed": "heartbeat"})]

    def _request(self, action: str, symbols: Iterable[str], req_id: int) -> str:
        return _json_request({"event": action, "feed": "ticker", "product_ids": list(symbols)})

    def _parse(self, frame: Any, received_at: float) -> FrameResult:
        if type(frame) is not dict:
            raise _Bad("futures frame is not a JSON object")
        feed = frame.get("feed")
        event = frame.get("event")
        if event is None:
            if feed == "ticker":
                return _new_result(FrameResult, ((self._tick(frame, received_at),), ()))
            if feed == "heartbeat":
                return _HEARTBEAT_RESULT
            if type(feed) is str:
                return FrameResult((), (Ignored(f"feed {feed}"),))
            raise _Bad("futures frame has neither feed nor event")
        if event == "info":
            version = frame.get("version")
            return FrameResult((), (Status(None, None if version is None else str(version)),))
        if event in ("subscribed", "unsubscribed", "subscribed_failed", "unsubscribed_failed"):
            return FrameResult((), self._acks(frame, event, feed))
        if event in ("alert", "error"):
            return FrameResult((), (ErrorReply(str(frame.get("message") or event)),))
        if type(event) is str:
            return FrameResult((), (Ignored(f"event {event}"),))
        raise _Bad("futures frame event is not a string")

    def _acks(self, frame: dict[str, Any], event: str, feed: Any) -> tuple[ControlEvent, ...]:
        ok = not event.endswith("_failed")
        action = "unsubscribe" if event.startswith("unsubscribed") else "subscribe"
        message = frame.get("message")
        product_ids = frame.get("product_ids")
        if feed != "ticker" or not product_ids:
            if ok:
                return (Ignored(f"{event} {feed}"),)
            return (ErrorReply(f"{event} {feed}: {message or 'no reason given'}"),)
        if type(product_ids) is not list or not all(type(p) is str for p in product_ids):
            raise _Bad(f"{event} has a bad product_ids list")
        error = None if ok else str(message or event)
        return tuple(SubscribeAck(p.upper(), ok, error, action) for p in product_ids)

    def _tick(self, frame: dict[str, Any], received_at: float) -> Tick:
        product = frame.get("product_id")
        if type(product) is not str or not product:
            raise _Bad("futures ticker has no product_id")
        symbol = product.upper()
        last, bid, ask = _last_bid_ask(frame, symbol)
        stamp = frame.get("time")
        if stamp is not None:
            stamp = _epoch_ms(stamp, "time")
        return Tick(symbol, "futures", received_at, last, bid, ask, stamp)


PROTOCOLS = ("v2", "v1", "futures")


def dialect_for(protocol: str, registry: PairRegistry | None = None, **options: Any) -> Dialect:
    """The dialect for "v2", "v1" or "futures"."""
    if protocol == "v2":
        return V2Dialect(registry, **options)
    if protocol == "v1":
        return V1Dialect(registry, **options)
    if protocol == "futures":
        return FuturesDialect(**options)
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")


_DEFAULT: dict[str, Dialect] = {}


def _default(protocol: str) -> Dialect:
    dialect = _DEFAULT.get(protocol)
    if dialect is None:
        dialect = _DEFAULT[protocol] = dialect_for(protocol)
    return dialect


def parse_v2(text: str | bytes, received_at: float, registry: PairRegistry | None = None) -> FrameResult:
    """Parse one spot v2 frame (default pair registry unless one is given)."""
    return (V2Dialect(registry) if registry else _default("v2")).parse(text, received_at)


def parse_v1(text: str | bytes, received_at: float, registry: PairRegistry | None = None) -> FrameResult:
    """Parse one spot v1 frame (default pair registry unless one is given)."""
    return (V1Dialect(registry) if registry else _default("v1")).parse(text, received_at)


def parse_futures(text: str | bytes, received_at: float) -> FrameResult:
    """Parse one futures frame."""
    return _default("futures").parse(text, received_at)
