"""Kraken Spot REST client: public market data and signed private calls.

    client = SpotClient(spot_credentials(), KRAKEN, tier="intermediate")
    client.balance()                      # {"ZUSD": "171288.6158", ...}: Kraken's strings, as sent
    placed = client.add_order("XBTUSD", "buy", "limit", "0.01", price="30000", cl_ord_id=decision_id)

Guarantees:
- One keep-alive HTTP session, explicit (connect, read) timeouts, a User-Agent.
- Private calls of one key are nonce-stamped, signed and sent under the key's lock
  (`NonceSource.issue`), so Kraken receives them in nonce order from any number of threads
  (the plumbing shared with the Futures client is `kraken.rest_client`).
- Every parameter is encoded once (`kraken.order_codec`, `kraken.params`): `add_order`
  builds an `AddOrder` and `place(request)` sends an encoded request exactly as given,
  which is how the engine's executors send the request they audited.
- Reads, cancels and validate-only orders retry transient errors with exponential backoff
  and jitter. A real AddOrder is never resent blind: after an ambiguous failure (read
  timeout, lost connection, 5xx, `EService:*`) the client looks the order up by its
  `cl_ord_id` (OpenOrders, then ClosedOrders) and returns it with `recovered=True` if it
  exists; only an order proven absent is sent again. Without a `cl_ord_id` (when `userref`
  is used) an ambiguous failure raises `OrderStateUnknown` instead.
- A client-side `RateLimiter` (tier from config) waits before Kraken would refuse a call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.kraken.errors import RateLimited, raise_for_spot
from rules_engine.kraken.http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, Transport
from rules_engine.kraken.limiter import RateLimiter
from rules_engine.kraken.nonce import NonceSource, shared_nonce_source
from rules_engine.kraken.order_codec import AddOrder, KrakenRequest, encode_add_order, is_relative, spot_request
from rules_engine.kraken.params import (
    FORM_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    epoch_of,
    form_body,
    form_fields,
    ids_text,
    json_body,
    new_cl_ord_id,
    rfc3339,
    to_decimal,
)
from rules_engine.kraken.rest_client import RestClient, Signed
from rules_engine.kraken.retry import DEFAULT_RETRY, RetryPolicy

Number = str | int | float | Decimal  # prefer str or Decimal for prices
BodyFormat = Literal["form", "json"]


@dataclass(frozen=True)
class AddOrderResult:
    """What AddOrder returned, or what the lookup found after an ambiguous failure."""

    txid: tuple[str, ...]
    descr: Mapping[str, Any]
    cl_ord_id: str | None = None
    recovered: bool = False  # True: the answer was lost and the order was found by lookup
    validated_only: bool = False  # validate=True: checked by Kraken, nothing placed
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _price(value: Number | None) -> Decimal | str | None:
    """A price: a relative one (`+100`, `#5%`) stays text, an absolute one is a Decimal."""
    if isinstance(value, str) and is_relative(value):
        return value
    return to_decimal(value)


class SpotClient(RestClient):
    """Kraken Spot REST. Thread-safe; create one per API key and share it."""

    def __init__(
        self,
        credentials: Credentials | None,
        endpoints: KrakenEndpoints = KRAKEN,
        *,
        tier: str = "starter",
        nonce_source: NonceSource | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = DEFAULT_USER_AGENT,
        body_format: BodyFormat = "form",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = DEFAULT_RETRY,
        limiter: RateLimiter | None = None,
        transport: Transport | None = None,
        settle_seconds: float = 1.0,
        send_grace: float = 0.5,
    ):
        if body_format not in ("form", "json"):
            raise ValueError("body_format must be 'form' or 'json'")
        super().__init__(
            credentials,
            endpoints.spot_rest,
            nonce_source=nonce_source or shared_nonce_source(),
            timeout=timeout,
            user_agent=user_agent,
            clock=clock,
            sleep=sleep,
            retry=retry,
            transport=transport,
            settle_seconds=settle_seconds,
            send_grace=send_grace,
        )
        self.body_format = body_format
        self.limiter = limiter or RateLimiter(tier, clock=clock, sleep=sleep)

    # --- plumbing ---------------------------------------------------------------------

    def _check(self, answer: Any, method: str) -> Any:
        return raise_for_spot(answer, method)

    def _sign(self, credentials: Credentials, nonce: int, http_method: str, path: str,
              params: Mapping[str, Any]) -> Signed:
        """The body (`nonce` and the parameters, canonical order) signed over its exact text."""
        if self.body_format == "json":
            body, content_type = json_body({"nonce": nonce, **params}), JSON_CONTENT_TYPE
        else:
            body, content_type = form_body({"nonce": nonce, **params}), FORM_CONTENT_TYPE
        headers = {
            "API-Key": credentials.api_key,
            "API-Sign": credentials.spot_sign(path, nonce, body),
            "Content-Type": content_type,
        }
        return Signed(headers, body=body)

    def _public(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/0/public/{method}"
        query = form_fields(params or {})
        return self._retrying(lambda: self._unsigned("GET", url, method, query=query))

    def _send(self, request: KrakenRequest, *, pair: str | None = None, order_id: str | None = None) -> Any:
        """One signed call of `request`, exactly its parameters plus the nonce. Waits for
        the rate counters outside the key's lock, then counts the call under it, so Kraken
        sees the calls in counting and nonce order."""
        method = request.method
        self.limiter.wait_for_room(method, pair=pair, order_id=order_id)

        def count() -> None:
            self.limiter.acquire(method, pair=pair, order_id=order_id)

        try:
            answer = self._signed("POST", request.path, method, request.params, before_send=count)
        except RateLimited as exc:
            trading = any(e.startswith("EOrder") for e in exc.errors)
            self.limiter.note_rate_limited(pair if trading and pair else None, method)
            raise
        self.limiter.note_answered(None)
        if pair is not None:
            self.limiter.note_answered(pair)
        return answer

    def _private(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """A private call that is safe to repeat (read, cancel): retried on transient errors."""
        request = spot_request(method, params)
        return self._nonce_retried(lambda: self._retrying(lambda: self._send(request)))

    # --- public market data -------------------------------------------------------------

    def time(self) -> dict[str, Any]:
        """`{"unixtime": 1688669448, "rfc1123": "..."}`"""
        return self._public("Time")

    def system_status(self) -> dict[str, Any]:
        """`{"status": "online"|"maintenance"|"cancel_only"|"post_only", "timestamp": ...}`"""
        return self._public("SystemStatus")

    def asset_pairs(
        self,
        pair: str | Sequence[str] | None = None,
        *,
        info: str | None = None,
        aclass_base: str | None = None,
        country_code: str | None = None,
    ) -> dict[str, Any]:
        params = {"pair": ids_text(pair) if pair else None, "info": info, "aclass_base": aclass_base}
        return self._public("AssetPairs", {**params, "country_code": country_code})

    def ticker(self, pair: str | Sequence[str] | None = None) -> dict[str, Any]:
        """Keyed by pair id: `{"XXBTZUSD": {"a": [...], "b": [...], "c": [...], ...}}`."""
        return self._public("Ticker", {"pair": ids_text(pair) if pair else None})

    def ohlc(self, pair: str, *, interval: int | None = None, since: int | None = None) -> dict[str, Any]:
        return self._public("OHLC", {"pair": pair, "interval": interval, "since": since})

    # --- private reads ------------------------------------------------------------------

    def balance(self) -> dict[str, str]:
        """`{"ZUSD": "171288.6158", "XXBT": "1011.19", ...}`"""
        return self._private("Balance")

    def balance_ex(self) -> dict[str, Any]:
        """`{"ZUSD": {"balance": ..., "hold_trade": ...}, ...}`"""
        return self._private("BalanceEx")

    def trade_balance(self, asset: str | None = None) -> dict[str, Any]:
        return self._private("TradeBalance", {"asset": asset})

    def open_orders(
        self, *, trades: bool | None = None, userref: int | None = None, cl_ord_id: str | None = None
    ) -> dict[str, Any]:
        """`{"open": {txid: order, ...}}`"""
        return self._private("OpenOrders", {"trades": trades, "userref": userref, "cl_ord_id": cl_ord_id})

    def closed_orders(
        self,
        *,
        trades: bool | None = None,
        userref: int | None = None,
        cl_ord_id: str | None = None,
        start: int | str | None = None,
        end: int | str | None = None,
        ofs: int | None = None,
        closetime: str | None = None,
    ) -> dict[str, Any]:
        """`{"closed": {txid: order, ...}, "count": n}` (50 at a time)."""
        params = {"trades": trades, "userref": userref, "cl_ord_id": cl_ord_id, "start": start}
        return self._private("ClosedOrders", {**params, "end": end, "ofs": ofs, "closetime": closetime})

    def query_orders(
        self,
        txid: str | Sequence[str],
        *,
        trades: bool | None = None,
        userref: int | None = None,
        consolidate_taker: bool | None = None,
    ) -> dict[str, Any]:
        """`{txid: order, ...}` for up to 50 ids."""
        params = {"txid": ids_text(txid), "trades": trades, "userref": userref}
        return self._private("QueryOrders", {**params, "consolidate_taker": consolidate_taker})

    def get_websockets_token(self) -> dict[str, Any]:
        """`{"token": "...", "expires": 900}` for the private WebSocket API."""
        return self._private("GetWebSocketsToken")

    # --- trading ------------------------------------------------------------------------

    def add_order(
        self,
        pair: str,
        type: Literal["buy", "sell"],
        ordertype: str,
        volume: Number,
        *,
        price: Number | None = None,
        price2: Number | None = None,
        trigger: Literal["last", "index"] | None = None,
        leverage: str | None = None,
        reduce_only: bool | None = None,
        stptype: str | None = None,
        oflags: str | Sequence[str] | None = None,
        timeinforce: Literal["GTC", "IOC", "GTD"] | None = None,
        starttm: str | int | None = None,
        expiretm: str | int | None = None,
        close_ordertype: str | None = None,
        close_price: Number | None = None,
        close_price2: Number | None = None,
        deadline: datetime | str | None = None,
        validate: bool = False,
        userref: int | None = None,
        cl_ord_id: str | None = None,
        displayvol: Number | None = None,
        asset_class: str | None = None,
    ) -> AddOrderResult:
        """Place (or with `validate=True`, only check) an order.

        Without `userref` or `cl_ord_id` the client assigns a random `cl_ord_id`, so that
        an ambiguous failure can always be settled by lookup. Pass a deterministic one per
        decision to make the placement idempotent across restarts as well. A `deadline`
        (2 to 60 s ahead) makes "not found after the deadline" proof that no order exists.
        """
        if userref is not None and cl_ord_id is not None:
            raise ValueError("userref and cl_ord_id are mutually exclusive (Kraken rule)")
        if cl_ord_id is None and userref is None:
            cl_ord_id = new_cl_ord_id()
        order = AddOrder(
            pair=pair,
            side=type,
            ordertype=ordertype,
            volume=to_decimal(volume),
            price=_price(price),
            price2=_price(price2),
            trigger=trigger,
            leverage=leverage,
            reduce_only=reduce_only,
            stptype=stptype,
            oflags=tuple(oflags.split(",") if isinstance(oflags, str) else oflags or ()),
            timeinforce=timeinforce,
            starttm=None if starttm is None else str(starttm),
            expiretm=None if expiretm is None else str(expiretm),
            displayvol=to_decimal(displayvol),
            asset_class=asset_class,
            close_ordertype=close_ordertype,
            close_price=_price(close_price),
            close_price2=_price(close_price2),
            deadline=rfc3339(deadline) if isinstance(deadline, datetime) else deadline,
            validate=validate,
            userref=userref,
            cl_ord_id=cl_ord_id,
        )
        return self.place(encode_add_order(order))

    def place(self, request: KrakenRequest) -> AddOrderResult:
        """Send an encoded AddOrder (`order_codec`) exactly as it is, plus the nonce.

        Validate-only requests are retried like reads. A real order is placed at most
        once: after an ambiguous failure it is looked up by its `cl_ord_id` (and bounded
        by its `deadline`), never resent blind.
        """
        if request.method != "AddOrder":
            raise ValueError(f"place() sends AddOrder requests, not {request.method}")
        params = request.params
        pair = str(params["pair"])
        cl_ord_id = params.get("cl_ord_id")
        cl_ord_id = None if cl_ord_id is None else str(cl_ord_id)
        if params.get("validate") is True:
            result = self._retrying(lambda: self._send(request, pair=pair))
            return AddOrderResult(
                txid=tuple(result.get("txid") or ()),
                descr=result.get("descr", {}),
                cl_ord_id=cl_ord_id,
                validated_only=True,
                raw=result,
            )
        deadline = params.get("deadline")

        def send() -> AddOrderResult:
            result = self._send(request, pair=pair)
            return AddOrderResult(tuple(result.get("txid") or ()), result.get("descr", {}), cl_ord_id, raw=result)

        def find() -> AddOrderResult | None:
            found = self.find_order(cl_ord_id) if cl_ord_id else None
            if found is None:
                return None
            txid, order = found
            descr = {"order": (order.get("descr") or {}).get("order", "")}
            return AddOrderResult((txid,), descr, cl_ord_id, recovered=True, raw=order)

        placed = self._place(send, find, method="AddOrder", client_id=cl_ord_id,
                             deadline=epoch_of(str(deadline)) if deadline is not None else None)
        self.limiter.record_order([*placed.txid, *([cl_ord_id] if cl_ord_id else [])], pair)
        return placed

    def find_order(self, cl_ord_id: str) -> tuple[str, dict[str, Any]] | None:
        """The order with this client order id, open or closed: `(txid, order)` or None."""
        for lookup, key in ((self.open_orders, "open"), (self.closed_orders, "closed")):
            orders = lookup(cl_ord_id=cl_ord_id).get(key) or {}
            for txid, order in orders.items():
                if order.get("cl_ord_id", cl_ord_id) == cl_ord_id:
                    return txid, order
        return None

    def cancel_order(self, txid: str | int | None = None, *, cl_ord_id: str | None = None) -> dict[str, Any]:
        """Cancel one order by txid (or userref) or by cl_ord_id: `{"count": 1, "pending": false}`.

        Retried on transient errors (a cancel cannot duplicate anything); an `UnknownOrder`
        after a retry means the order is gone either way.
        """
        if (txid is None) == (cl_ord_id is None):
            raise ValueError("give exactly one of txid or cl_ord_id")
        params = {"txid": txid} if txid is not None else {"cl_ord_id": cl_ord_id}
        order_id = str(txid if txid is not None else cl_ord_id)

        request = spot_request("CancelOrder", params)
        return self._retrying(lambda: self._send(request, order_id=order_id))

    def cancel_all(self) -> dict[str, Any]:
        """Cancel every open order of the account: `{"count": n}`."""
        result = self._private("CancelAll")
        self.limiter.record_cancel_all()
        return result

    def cancel_all_orders_after(self, timeout: int) -> dict[str, Any]:
        """Dead man's switch: cancel everything unless called again within `timeout` s (0 = off)."""
        if not 0 <= int(timeout) < 86400:
            raise ValueError("timeout must be 0 (disable) or 1..86399 seconds")
        return self._private("CancelAllOrdersAfter", {"timeout": int(timeout)})
