"""Kraken Futures REST client (`/derivatives/api/v3`).

Private calls carry `APIKey`, `Nonce` and `Authent` headers; `Authent` signs
`postData + nonce + endpointPath` (`/api/v3/...`, no `/derivatives`), where `postData` is
the url-encoded query string (GET) or form body (POST) exactly as sent.

Every answer goes through `raise_for_futures` (`"result": "error"` -> typed exception), and
order calls also through `raise_for_order_status`: a refused order comes back as
`"result": "success"` with `sendStatus.status` such as `insufficientAvailableFunds`.
`send_order` (keywords) and `place` (a request encoded by `kraken.order_codec`) follow the
same at-most-once rule as Spot AddOrder, looking an ambiguous order up by `cliOrdId` in the
open orders before ever sending it again. Private calls wait for room in the key's Futures
budget (`kraken.futures_limiter`: 500 per 10 s, sendorder 10, ...) instead of being refused.
Signing, sending, retries and placement are the plumbing shared with the Spot client
(`kraken.rest_client`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.kraken.errors import RateLimited, raise_for_futures, raise_for_order_status
from rules_engine.kraken.futures_limiter import FuturesRateLimiter
from rules_engine.kraken.http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, Transport
from rules_engine.kraken.nonce import NonceSource, shared_nonce_source
from rules_engine.kraken.order_codec import KrakenRequest, SendOrder, encode_send_order, futures_request
from rules_engine.kraken.params import (
    FORM_CONTENT_TYPE,
    encode_fields,
    epoch_of,
    form_fields,
    new_cl_ord_id,
    rfc3339,
    to_decimal,
)
from rules_engine.kraken.rest_client import RestClient, Signed
from rules_engine.kraken.retry import DEFAULT_RETRY, RetryPolicy

Number = str | int | float | Decimal

# Kraken suggests millisecond nonces for Futures.
FUTURES_NONCE_UNIT_NS = 1_000_000


@dataclass(frozen=True)
class SendOrderResult:
    """`sendStatus` of an accepted order, or the open order found by lookup."""

    order_id: str | None
    status: str
    cli_ord_id: str | None = None
    recovered: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class FuturesClient(RestClient):
    """Kraken Futures REST. Thread-safe; create one per API key and share it."""

    def __init__(
        self,
        credentials: Credentials | None,
        endpoints: KrakenEndpoints = KRAKEN,
        *,
        nonce_source: NonceSource | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = DEFAULT_USER_AGENT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: Transport | None = None,
        settle_seconds: float = 1.0,
        limiter: FuturesRateLimiter | None = None,
        send_grace: float = 0.5,
    ):
        super().__init__(
            credentials,
            endpoints.futures_rest,
            nonce_source=nonce_source or shared_nonce_source(FUTURES_NONCE_UNIT_NS),
            timeout=timeout,
            user_agent=user_agent,
            clock=clock,
            sleep=sleep,
            retry=retry,
            transport=transport,
            settle_seconds=settle_seconds,
            send_grace=send_grace,
        )
        self._base_path = urlsplit(self.base_url).path
        self.limiter = limiter or FuturesRateLimiter(clock=clock, sleep=sleep)

    # --- plumbing ---------------------------------------------------------------------

    def _check(self, answer: Any, method: str) -> Any:
        return raise_for_futures(answer, method)

    def _path(self, endpoint: str) -> str:
        """The signed path: `/derivatives/api/v3/<endpoint>` (Authent drops `/derivatives`)."""
        return f"{self._base_path}/api/v3/{endpoint}"

    def _url(self, path: str) -> str:
        return self.base_url + path[len(self._base_path):]

    def _sign(self, credentials: Credentials, nonce: int, http_method: str, path: str,
              params: Mapping[str, Any]) -> Signed:
        """postData is the query (GET) or form body (POST) exactly as sent."""
        fields = form_fields(params)
        encoded = encode_fields(fields)
        headers = {"APIKey": credentials.api_key, "Nonce": str(nonce),
                   "Authent": credentials.futures_sign(path, str(nonce), encoded)}
        if http_method == "GET":
            return Signed(headers, query=fields)
        headers["Content-Type"] = FORM_CONTENT_TYPE
        return Signed(headers, body=encoded)

    def _call_once(self, http_method: str, endpoint: str, params: Mapping[str, Any], *, private: bool) -> dict:
        """One request to `/api/v3/<endpoint>`; private calls are signed under the key's lock,
        after waiting for room in the Futures budget (counted right before the call leaves)."""
        if private:
            self.limiter.wait_for_room(endpoint, params)
            try:
                return self._signed(http_method, self._path(endpoint), endpoint, params,
                                    before_send=lambda: self.limiter.acquire(endpoint, params))
            except RateLimited:
                self.limiter.note_rate_limited()
                raise
        fields = form_fields(params)
        query, body = (fields, None) if http_method == "GET" else (None, encode_fields(fields))
        return self._unsigned(http_method, self._url(self._path(endpoint)), endpoint, query=query, body=body)

    def _call(self, http_method: str, endpoint: str, params: Mapping[str, Any] | None = None, *, private: bool) -> dict:
        """A call that is safe to repeat, retried on transient errors."""
        clean = futures_request(endpoint, params).params
        return self._nonce_retried(
            lambda: self._retrying(lambda: self._call_once(http_method, endpoint, clean, private=private)))

    # --- market data and account --------------------------------------------------------

    def tickers(self) -> list[dict[str, Any]]:
        return self._call("GET", "tickers", private=False)["tickers"]

    def accounts(self) -> dict[str, Any]:
        """`{"cash": {...}, "flex": {...}, "fi_xbtusd": {...}}`"""
        return self._call("GET", "accounts", private=True)["accounts"]

    def open_positions(self) -> list[dict[str, Any]]:
        return self._call("GET", "openpositions", private=True)["openPositions"]

    def open_orders(self) -> list[dict[str, Any]]:
        return self._call("GET", "openorders", private=True)["openOrders"]

    def fills(self, last_fill_time: str | None = None) -> list[dict[str, Any]]:
        """The account's recent fills, newest first (`fill_id`, `order_id`, `symbol`, `side`,
        `size`, `price`, `fillTime`, `fillType`); Kraken's fills carry no `cliOrdId`."""
        return list(self._call("GET", "fills", {"lastFillTime": last_fill_time}, private=True).get("fills") or [])

    def orders_status(self, *, cli_ord_ids: list[str] | None = None,
                      order_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Kraken's "Get Specific Orders' Status" (`orders/status`): for each named order that
        is open, or was filled or cancelled in the last 5 seconds, `{"order": {...}, "status":
        "ENTERED_BOOK" | "FULLY_EXECUTED" | "CANCELLED" | "REJECTED" | "TRIGGER_PLACED" | ...}`."""
        params = {"cliOrdIds": ",".join(cli_ord_ids) if cli_ord_ids else None,
                  "orderIds": ",".join(order_ids) if order_ids else None}
        return list(self._call("POST", "orders/status", params, private=True).get("orders") or [])

    # --- trading ------------------------------------------------------------------------

    def send_order(
        self,
        order_type: Literal["lmt", "post", "ioc", "mkt", "stp", "take_profit", "trailing_stop", "fok"],
        symbol: str,
        side: Literal["buy", "sell"],
        size: Number,
        *,
        limit_price: Number | None = None,
        stop_price: Number | None = None,
        cli_ord_id: str | None = None,
        trigger_signal: Literal["mark", "index", "last"] | None = None,
        reduce_only: bool | None = None,
        trailing_stop_max_deviation: Number | None = None,
        trailing_stop_deviation_unit: Literal["PERCENT", "QUOTE_CURRENCY"] | None = None,
        limit_price_offset_value: Number | None = None,
        limit_price_offset_unit: Literal["PERCENT", "QUOTE_CURRENCY"] | None = None,
        process_before: datetime | str | None = None,
        broker: str | None = None,
    ) -> SendOrderResult:
        """Place an order; a refusal in `sendStatus` raises the matching typed error.

        Without `cli_ord_id` the client assigns a random one, so that an ambiguous failure
        can be settled by lookup; `process_before` plays the role of Spot's `deadline`.
        """
        order = SendOrder(
            order_type=order_type,
            symbol=symbol,
            side=side,
            size=to_decimal(size),
            limit_price=to_decimal(limit_price),
            stop_price=to_decimal(stop_price),
            cli_ord_id=cli_ord_id or new_cl_ord_id(),
            trigger_signal=trigger_signal,
            reduce_only=reduce_only,
            trailing_stop_max_deviation=to_decimal(trailing_stop_max_deviation),
            trailing_stop_deviation_unit=trailing_stop_deviation_unit,
            limit_price_offset_value=to_decimal(limit_price_offset_value),
            limit_price_offset_unit=limit_price_offset_unit,
            process_before=rfc3339(process_before) if isinstance(process_before, datetime) else process_before,
            broker=broker,
        )
        return self.place(encode_send_order(order))

    def place(self, request: KrakenRequest) -> SendOrderResult:
        """Send an encoded sendorder (`order_codec`) exactly as it is, at most once: after
        an ambiguous failure it is looked up by `cliOrdId`, bounded by `processBefore`."""
        if request.method != "sendorder":
            raise ValueError(f"place() sends sendorder requests, not {request.method}")
        cli_ord_id = request.params.get("cliOrdId")
        cli_ord_id = None if cli_ord_id is None else str(cli_ord_id)
        before = request.params.get("processBefore")

        def send() -> SendOrderResult:
            status = self._call_once("POST", "sendorder", request.params, private=True).get("sendStatus") or {}
            raise_for_order_status(status, "sendorder")
            return SendOrderResult(status.get("order_id"), str(status.get("status")), cli_ord_id, raw=status)

        def find() -> SendOrderResult | None:
            for order in self.open_orders():
                if order.get("cliOrdId") == cli_ord_id:
                    return SendOrderResult(order.get("order_id"), "placed", cli_ord_id, recovered=True, raw=order)
            return None

        deadline = epoch_of(str(before)) if before is not None else None
        return self._place(send, find, method="sendorder", client_id=cli_ord_id, deadline=deadline)

    def cancel_order(
        self, order_id: str | None = None, *, cli_ord_id: str | None = None, process_before: str | None = None
    ) -> dict[str, Any]:
        """`cancelStatus` (`status: cancelled`); an unknown order raises `UnknownOrder`."""
        if (order_id is None) == (cli_ord_id is None):
            raise ValueError("give exactly one of order_id or cli_ord_id")
        params = {"order_id": order_id, "cliOrdId": cli_ord_id, "processBefore": process_before}
        return self._cancel("cancelorder", params)

    def cancel_all_orders(self, symbol: str | None = None) -> dict[str, Any]:
        """`cancelStatus` with `cancelledOrders`; all symbols when `symbol` is None."""
        return self._cancel("cancelallorders", {"symbol": symbol})

    def _cancel(self, endpoint: str, params: Mapping[str, Any]) -> dict[str, Any]:
        clean = futures_request(endpoint, params).params

        def once() -> dict[str, Any]:
            status = self._call_once("POST", endpoint, clean, private=True).get("cancelStatus") or {}
            return dict(raise_for_order_status(status, endpoint))

        return self._retrying(once)

    def cancel_all_orders_after(self, timeout: int) -> dict[str, Any]:
        """Dead man's switch: `{"currentTime": ..., "triggerTime": ...}`; 0 disables it."""
        if int(timeout) < 0:
            raise ValueError("timeout must be >= 0 seconds")
        return self._call("POST", "cancelallordersafter", {"timeout": int(timeout)}, private=True)["status"]
