"""Kraken Futures REST semantics (`/derivatives/api/v3/...`) over a `FuturesExchange`,
without the transport: methods take the parameters and the time and return the payload
that goes next to `"result": "success"`, or raise `FuturesError`.

A refused order is still a success at the top level: its outcome is
`sendStatus.status` (`insufficientAvailableFunds`, `clientOrderIdAlreadyExist`, ...).
Unsupported order types (`trailing_stop`) get `invalidArgument`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.kraken.order_codec import BadParameter, decode_send_order
from rules_engine.paper.errors import FuturesError
from rules_engine.sim.futures import ORDER_TYPES, FuturesExchange, FuturesOrder, Product, SendResult
from rules_engine.sim.market import MarketData

PUBLIC = frozenset({"tickers", "instruments"})
# Cost of each call against the futures budget (500 per 10 s), as Kraken documents.
COSTS = {
    "sendorder": 10,
    "cancelorder": 10,
    "cancelallorders": 25,
    "cancelallordersafter": 25,
    "accounts": 2,
    "openpositions": 2,
    "openorders": 2,
    "fills": 2,
    "orders/status": 1,
}
STATUS_WINDOW = 5.0
"""`orders/status` answers for open orders and for orders filled or cancelled this recently (s)."""
_REJECT_REASONS = {
    "insufficientAvailableFunds": "INSUFFICIENT_AVAILABLE_FUNDS",
    "clientOrderIdAlreadyExist": "CLIENT_ORDER_ID_ALREADY_EXIST",
    "clientOrderIdTooBig": "CLIENT_ORDER_ID_TOO_BIG",
    "invalidSize": "INVALID_SIZE",
    "invalidPrice": "INVALID_PRICE",
    "postWouldExecute": "POST_WOULD_EXECUTE",
    "iocWouldNotExecute": "IOC_WOULD_NOT_EXECUTE",
    "wouldNotReducePosition": "WOULD_NOT_REDUCE_POSITION",
    "marketInactive": "MARKET_INACTIVE",
}


def iso_ms(now: float) -> str:
    """`2019-09-05T16:33:50.734Z`, the futures API's timestamps."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _number(params: Mapping[str, str], key: str, required: bool = False) -> Decimal | None:
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise FuturesError("requiredArgumentMissing")
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise FuturesError("invalidArgument") from None
    if not value.is_finite():
        raise FuturesError("invalidArgument")
    return value


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


class FuturesApi:
    def __init__(self, exchange: FuturesExchange, market: MarketData):
        self.exchange = exchange
        self.market = market
        self.methods: dict[str, Callable[[str, Mapping[str, str], float], dict[str, Any]]] = {
            "accounts": self.accounts,
            "openpositions": self.open_positions,
            "openorders": self.open_orders,
            "fills": self.fills,
            "sendorder": self.send_order,
            "cancelorder": self.cancel_order,
            "cancelallorders": self.cancel_all_orders,
            "cancelallordersafter": self.cancel_all_orders_after,
            "orders/status": self.orders_status,
        }

    # ------------------------------------------------------------------ public

    def ticker(self, product: Product, now: float) -> dict[str, Any] | None:
        """One entry of `/tickers` (None while the product has no price)."""
        mark = self.exchange.mark(product.symbol)
        stats = self.market.stats(product.underlying)
        if mark is None or stats is None:
            return None
        bid, ask = stats.quoted if stats.quoted is not None else (mark - product.tick_size, mark + product.tick_size)
        return {
            "tag": "perpetual",
            "pair": product.pair,
            "symbol": product.symbol,
            "markPrice": float(mark),
            "bid": float(bid),
            "bidSize": 1.0,
            "ask": float(ask),
            "askSize": 1.0,
            "vol24h": float(stats.volume),
            "volumeQuote": float(stats.cost),
            "openInterest": 0.0,
            "open24h": float(stats.open),
            "high24h": float(stats.high),
            "low24h": float(stats.low),
            "indexPrice": float(mark),
            "last": float(mark),
            "lastTime": iso_ms(stats.updated),
            "lastSize": float(stats.last_volume),
            "suspended": False,
            "fundingRate": 0.0,
            "fundingRatePrediction": 0.0,
            "postOnly": False,
            "change24h": float((mark - stats.open) / stats.open * 100) if stats.open else 0.0,
        }

    def tickers(self, now: float) -> dict[str, Any]:
        entries = (self.ticker(p, now) for p in self.exchange.products.values())
        return {"tickers": [t for t in entries if t is not None]}

    def call(self, method: str, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        handler = self.methods.get(method)
        if handler is None:
            raise FuturesError("notFound")
        return handler(account, params, now)

    # ------------------------------------------------------------------ private

    def accounts(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        m = self.exchange.margin(account)
        currencies = {}
        for currency, amount in sorted(self.exchange.collateral(account).items()):
            value = self.exchange.value_usd(currency, amount)
            currencies[currency] = {
                "quantity": float(amount),
                "value": float(value),
                "collateral": float(value),
                "available": float(amount),
            }
        flex = {
            "type": "multiCollateralMarginAccount",
            "currencies": currencies,
            "balanceValue": float(m["collateral"]),
            "portfolioValue": float(m["equity"]),
            "collateralValue": float(m["collateral"]),
            "initialMargin": float(m["initial_margin"]),
            "initialMarginWithOrders": float(m["initial_margin_with_orders"]),
            "maintenanceMargin": float(m["maintenance_margin"]),
            "pnl": 0.0,
            "unrealizedFunding": 0.0,
            "totalUnrealized": float(m["pnl"]),
            "totalUnrealizedAsMargin": float(m["pnl"]),
            "marginEquity": float(m["equity"]),
            "availableMargin": float(m["available"]),
        }
        return {"accounts": {"cash": {"type": "cashAccount", "balances": {}}, "flex": flex}}

    def open_positions(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        positions = sorted(self.exchange.positions(account), key=lambda p: p.fill_time, reverse=True)
        return {
            "openPositions": [
                {
                    "side": "long" if p.size > 0 else "short",
                    "symbol": p.symbol,
                    "price": float(p.price),
                    "fillTime": iso_ms(p.fill_time),
                    "size": float(abs(p.size)),
                    "unrealizedFunding": 0.0,
                    "pnlCurrency": "USD",
                }
                for p in positions
            ]
        }

    def open_orders(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        return {
            "openOrders": [
                {
                    "order_id": o.order_id,
                    "cliOrdId": o.cli_ord_id,
                    "status": "untouched",
                    "side": o.side,
                    "orderType": o.order_type,
                    "symbol": o.symbol,
                    "limitPrice": _float(o.limit_price),
                    "stopPrice": _float(o.stop_price),
                    "filledSize": float(o.filled),
                    "unfilledSize": float(o.size - o.filled),
                    "reduceOnly": o.reduce_only,
                    "receivedTime": iso_ms(o.received),
                    "lastUpdateTime": iso_ms(o.updated),
                }
                for o in self.exchange.open_orders(account)
            ]
        }

    def fills(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        mine = [f for f in self.exchange.fills if f.account == account]
        return {
            "fills": [
                {
                    "fill_id": f.fill_id,
                    "symbol": f.symbol,
                    "side": f.side,
                    "order_id": f.order_id,
                    "size": float(f.size),
                    "price": float(f.price),
                    "fillTime": iso_ms(f.time),
                    "fillType": "maker" if f.maker else "taker",
                }
                for f in reversed(mine)
            ]
        }

    def orders_status(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        """Kraken's "Get Specific Orders' Status": the named orders (`orderIds`, `cliOrdIds`,
        comma-separated) that are open or were filled or cancelled in the last 5 seconds."""
        wanted_ids = {v for v in (params.get("orderIds") or "").split(",") if v}
        wanted_cli = {v for v in (params.get("cliOrdIds") or "").split(",") if v}
        entries = []
        for order in self.exchange.orders.values():
            if order.account != account or not (order.order_id in wanted_ids or order.cli_ord_id in wanted_cli):
                continue
            if not order.is_open and now - order.updated > STATUS_WINDOW:
                continue
            status = {"untouched": "ENTERED_BOOK", "filled": "FULLY_EXECUTED"}.get(order.status, "CANCELLED")
            entries.append({"order": self.order_json(order), "status": status, "updateReason": None, "error": None})
        return {"orders": entries}

    @staticmethod
    def order_json(order: FuturesOrder) -> dict[str, Any]:
        data: dict[str, Any] = {
            "orderId": order.order_id,
            "cliOrdId": order.cli_ord_id,
            "type": order.order_type,
            "symbol": order.symbol,
            "side": order.side,
            "quantity": float(order.size),
            "filled": float(order.filled),
            "limitPrice": _float(order.limit_price),
            "reduceOnly": order.reduce_only,
            "timestamp": iso_ms(order.received),
            "lastUpdateTimestamp": iso_ms(order.updated),
        }
        if order.stop_price is not None:
            data["stopPrice"] = float(order.stop_price)
        return data

    def send_order(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        """sendorder, its parameters decoded by `kraken.order_codec` (as the engine encodes them)."""
        try:
            order = decode_send_order(params)
        except BadParameter as exc:
            raise FuturesError("requiredArgumentMissing" if exc.missing else "invalidArgument") from None
        if order.order_type not in ORDER_TYPES or order.side not in ("buy", "sell"):
            raise FuturesError("invalidArgument")
        if self.exchange.product(order.symbol) is None:
            raise FuturesError("invalidArgument")
        if order.limit_price is None and order.order_type in ("lmt", "post", "ioc", "fok"):
            raise FuturesError("requiredArgumentMissing")
        if order.stop_price is None and order.order_type in ("stp", "take_profit"):
            raise FuturesError("requiredArgumentMissing")
        if order.process_before:
            try:
                deadline = datetime.fromisoformat(order.process_before.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise FuturesError("invalidArgument") from None
            if deadline < now:
                return {"sendStatus": {"status": "wouldProcessAfterSpecifiedTime", "receivedTime": iso_ms(now)}}
        result = self.exchange.send_order(
            account,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            size=order.size,
            now=now,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            cli_ord_id=order.cli_ord_id,
            reduce_only=bool(order.reduce_only),
        )
        return {"sendStatus": self._send_status(result, now)}

    def _send_status(self, result: SendResult, now: float) -> dict[str, Any]:
        order = result.order
        status: dict[str, Any] = {"order_id": order.order_id, "status": result.status, "receivedTime": iso_ms(now)}
        if order.cli_ord_id is not None:
            status["cliOrdId"] = order.cli_ord_id
        events: list[dict[str, Any]]
        if result.status in _REJECT_REASONS:
            reason = _REJECT_REASONS[result.status]
            events = [{"type": "REJECT", "uid": order.order_id, "reason": reason, "order": self.order_json(order)}]
        elif result.fills:
            events = [
                {
                    "type": "EXECUTION",
                    "executionId": fill.fill_id,
                    "price": float(fill.price),
                    "amount": float(fill.size),
                    "orderPriorExecution": {**self.order_json(order), "filled": 0.0},
                }
                for fill in result.fills
            ]
        else:
            events = [{"type": "PLACE", "order": self.order_json(order)}]
        status["orderEvents"] = events
        return status

    def cancel_order(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        order_id, cli_ord_id = params.get("order_id"), params.get("cliOrdId")
        if not order_id and not cli_ord_id:
            raise FuturesError("requiredArgumentMissing")
        order = self.exchange.cancel(account, now, order_id=order_id, cli_ord_id=cli_ord_id)
        if order is None:
            return {"cancelStatus": {"status": "notFound", "receivedTime": iso_ms(now)}}
        return {
            "cancelStatus": {
                "status": "cancelled",
                "order_id": order.order_id,
                "receivedTime": iso_ms(now),
                "orderEvents": [{"type": "CANCEL", "uid": order.order_id, "order": self.order_json(order)}],
            }
        }

    def cancel_all_orders(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        symbol = params.get("symbol") or None
        cancelled = self.exchange.cancel_all(account, now, symbol)
        return {
            "cancelStatus": {
                "receivedTime": iso_ms(now),
                "cancelOnly": symbol or "all",
                "status": "cancelled" if cancelled else "noOrdersToCancel",
                "cancelledOrders": [
                    {"order_id": o.order_id, **({"cliOrdId": o.cli_ord_id} if o.cli_ord_id else {})} for o in cancelled
                ],
                "orderEvents": [{"type": "CANCEL", "uid": o.order_id, "order": self.order_json(o)} for o in cancelled],
            }
        }

    def cancel_all_orders_after(self, account: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        timeout = _number(params, "timeout", required=True)
        if timeout is None or timeout < 0 or timeout != timeout.to_integral_value():
            raise FuturesError("invalidArgument")
        trigger = self.exchange.cancel_all_after(account, int(timeout), now)
        return {"status": {"currentTime": iso_ms(now), "triggerTime": "0" if trigger is None else iso_ms(trigger)}}
