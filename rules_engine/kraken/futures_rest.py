"""Kraken Futures REST client (`/derivatives/api/v3`).

Private calls carry `APIKey`, `Nonce` and `Authent` headers; `Authent` signs
`postData + nonce + endpointPath` (`/api/v3/...`, no `/derivatives`), where `postData` is
the url-encoded query string (GET) or form body (POST) exactly as sent.

Every answer goes through `raise_for_futures` (`"result": "error"` -> typed exception), and
order calls also through `raise_for_order_status`: a refused order comes back as
`"result": "success"` with `sendStatus.status` such as `insufficientAvailableFunds`.
`send_order` follows the same at-most-once rule as Spot AddOrder, looking an ambiguous
order up by `cliOrdId` in the open orders before ever sending it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.kraken.errors import AuthError, raise_for_futures, raise_for_order_status
from rules_engine.kraken.http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, RequestsTransport, Transport
from rules_engine.kraken.nonce import NonceSource, shared_nonce_source
from rules_engine.kraken.params import FORM_CONTENT_TYPE, compact, epoch_of, new_cl_ord_id, query_params, rfc3339
from rules_engine.kraken.placement import place_at_most_once
from rules_engine.kraken.retry import RetryPolicy, call_with_retries

Number = str | int | float

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


class FuturesClient:
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
        retry: RetryPolicy = RetryPolicy(),
        transport: Transport | None = None,
        settle_seconds: float = 1.0,
    ):
        self.credentials = credentials
        self.base_url = endpoints.futures_rest.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self.nonces = nonce_source or shared_nonce_source(FUTURES_NONCE_UNIT_NS)
        self.transport = transport or RequestsTransport(timeout=timeout, user_agent=user_agent)
        self.retry = retry
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FuturesClient({self.base_url}, {self.credentials!r})"

    # --- plumbing ---------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], Any]) -> Any:
        return call_with_retries(fn, policy=self.retry, sleep=self._sleep, clock=self._clock)

    def _call_once(self, http_method: str, endpoint: str, params: Mapping[str, Any], *, private: bool) -> dict:
        """One request to `/api/v3/<endpoint>`; private calls are signed under the key's lock."""
        path = f"{self._base_path}/api/v3/{endpoint}"
        url = self.base_url + f"/api/v3/{endpoint}"
        fields = query_params(params)
        encoded = urlencode(fields)
        query = fields if http_method == "GET" else None
        body = encoded if http_method == "POST" else None
        if not private:
            answer = self.transport.request(http_method, url, api_method=endpoint, params=query, body=body)
            return raise_for_futures(answer, endpoint)
        creds = self.credentials
        if creds is None:
            raise AuthError("no API credentials configured", method=endpoint)
        with self.nonces.issue(creds.fingerprint) as nonce_value:
            nonce = str(nonce_value)
            headers = {"APIKey": creds.api_key, "Nonce": nonce, "Authent": creds.futures_sign(path, nonce, encoded)}
            if body is not None:
                headers["Content-Type"] = FORM_CONTENT_TYPE
            answer = self.transport.request(
                http_method, url, api_method=endpoint, params=query, body=body, headers=headers
            )
        return raise_for_futures(answer, endpoint)

    def _call(self, http_method: str, endpoint: str, params: Mapping[str, Any] | None = None, *, private: bool) -> dict:
        """A call that is safe to repeat, retried on transient errors."""
        clean = compact(params or {})
        return self._retrying(lambda: self._call_once(http_method, endpoint, clean, private=private))

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
        cli_ord_id = cli_ord_id or new_cl_ord_id()
        before_text = rfc3339(process_before) if isinstance(process_before, datetime) else process_before
        params = compact(
            {
                "orderType": order_type,
                "symbol": symbol,
                "side": side,
                "size": size,
                "limitPrice": limit_price,
                "stopPrice": stop_price,
                "cliOrdId": cli_ord_id,
                "triggerSignal": trigger_signal,
                "reduceOnly": reduce_only,
                "trailingStopMaxDeviation": trailing_stop_max_deviation,
                "trailingStopDeviationUnit": trailing_stop_deviation_unit,
                "limitPriceOffsetValue": limit_price_offset_value,
                "limitPriceOffsetUnit": limit_price_offset_unit,
                "processBefore": before_text,
                "broker": broker,
            }
        )

        def send() -> SendOrderResult:
            status = self._call_once("POST", "sendorder", params, private=True).get("sendStatus") or {}
            raise_for_order_status(status, "sendorder")
            return SendOrderResult(status.get("order_id"), str(status.get("status")), cli_ord_id, raw=status)

        def find() -> SendOrderResult | None:
            for order in self.open_orders():
                if order.get("cliOrdId") == cli_ord_id:
                    return SendOrderResult(order.get("order_id"), "placed", cli_ord_id, recovered=True, raw=order)
            return None

        deadline = epoch_of(before_text) if before_text is not None else None
        result = place_at_most_once(
            send,
            find,
            method="sendorder",
            client_id=cli_ord_id,
            deadline=deadline,
            policy=self.retry,
            clock=self._clock,
            sleep=self._sleep,
            settle_seconds=self.settle_seconds,
        )
        return result

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
        clean = compact(params)

        def once() -> dict[str, Any]:
            status = self._call_once("POST", endpoint, clean, private=True).get("cancelStatus") or {}
            return dict(raise_for_order_status(status, endpoint))

        return self._retrying(once)

    def cancel_all_orders_after(self, timeout: int) -> dict[str, Any]:
        """Dead man's switch: `{"currentTime": ..., "triggerTime": ...}`; 0 disables it."""
        if int(timeout) < 0:
            raise ValueError("timeout must be >= 0 seconds")
        return self._call("POST", "cancelallordersafter", {"timeout": int(timeout)}, private=True)["status"]

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> FuturesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
