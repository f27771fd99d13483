"""Kraken Spot REST semantics, without the transport: methods take parsed parameters
and the current time and return the `result` object, or raise `ExchangeError`.

The aiohttp layer (`spot_rest`) adds signatures, nonces, the REST call counter and the
envelope; the engine's dry-run wallet can call `SpotApi.private` directly with the same
parameters it would sign and send.

Parameters arrive as a form (all strings) or as JSON (numbers kept exact as Decimal).
The trading counter (per account and pair) lives here, as Kraken applies it to every
trading call whatever the API: AddOrder +1 on receipt, cancels by the order's age.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rules_engine.kraken.ratelimit import TIERS, DecayingCounter, Tier, cancel_penalty
from rules_engine.pairs import PairInfo, asset_code
from rules_engine.paper.add_order import (
    _invalid,
    _split,
    check_deadline,
    flag,
    integer,
    iso_seconds,
    number,
    parse_add_order,
    text,
)
from rules_engine.paper.assets import Assets, asset_decimals, asset_pairs_snapshot, fmt
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.exchange import Fill, PaperExchange
from rules_engine.paper.ids import IdSource
from rules_engine.paper.orders import Order, describe, describe_close
from rules_engine.sim.market import INTERVALS, MarketData, rest_ticker

SYSTEM_STATUSES = ("online", "maintenance", "cancel_only", "post_only")
PAGE = 50
WS_TOKEN_SECONDS = 900
_ZERO = Decimal(0)


# ---------------------------------------------------------------------- the API


class SpotApi:
    """Kraken's public and private Spot REST methods over a `PaperExchange`."""

    def __init__(
        self,
        exchange: PaperExchange,
        market: MarketData,
        *,
        tiers: Mapping[str, str] | None = None,
        asset_pairs: Mapping[str, Any] | None = None,
        ids: IdSource | None = None,
    ):
        self.exchange = exchange
        self.market = market
        self.status = "online"
        self._tiers = dict(tiers or {})
        raw = asset_pairs if asset_pairs is not None else asset_pairs_snapshot()
        self._asset_pairs = {p.pair_id: dict(raw.get(p.pair_id) or _minimal_pair(p)) for p in exchange.pairs}
        self._ids = ids or IdSource("ws-token")
        self._trade_counters: dict[tuple[str, str], DecayingCounter] = {}
        self.ws_tokens: dict[str, tuple[str, float]] = {}  # token -> (account, expiry; 0 once in use)
        self.public_methods: dict[str, Callable[[Mapping[str, Any], float], Any]] = {
            "Time": self.time,
            "SystemStatus": self.system_status,
            "Assets": self.assets,
            "AssetPairs": self.asset_pairs,
            "Ticker": self.ticker,
            "OHLC": self.ohlc,
        }
        self.private_methods: dict[str, Callable[[str, Mapping[str, Any], float], Any]] = {
            "Balance": self.balance,
            "BalanceEx": self.balance_ex,
            "TradeBalance": self.trade_balance,
            "OpenOrders": self.open_orders,
            "ClosedOrders": self.closed_orders,
            "QueryOrders": self.query_orders,
            "TradesHistory": self.trades_history,
            "AddOrder": self.add_order,
            "CancelOrder": self.cancel_order,
            "CancelAll": self.cancel_all,
            "CancelAllOrdersAfter": self.cancel_all_orders_after,
            "GetWebSocketsToken": self.websockets_token,
        }

    def set_tier(self, account: str, tier: str) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
        self._tiers[account] = tier

    def tier(self, account: str) -> Tier:
        return TIERS[self._tiers.get(account, "starter")]

    def public(self, method: str, params: Mapping[str, Any], now: float) -> Any:
        handler = self.public_methods.get(method)
        if handler is None:
            raise ExchangeError("EGeneral:Unknown method")
        return handler(params, now)

    def private(self, method: str, account: str, params: Mapping[str, Any], now: float) -> Any:
        handler = self.private_methods.get(method)
        if handler is None:
            raise ExchangeError("EGeneral:Unknown method")
        if self.status == "maintenance":
            raise ExchangeError("EService:Unavailable")
        return handler(account, params, now)

    # ------------------------------------------------------------------ public

    def time(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        moment = datetime.fromtimestamp(now, UTC)
        return {"unixtime": int(now), "rfc1123": moment.strftime("%a, %d %b %y %H:%M:%S +0000")}

    def system_status(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        return {"status": self.status, "timestamp": iso_seconds(now)}

    def assets(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        book = self.exchange.assets
        wanted = _split(text(params, "asset"))
        codes = []
        for name in wanted or book.codes:
            code = book.get(name)
            if code is None:
                raise ExchangeError("EQuery:Unknown asset")
            codes.append(code)
        return {
            code: {
                "aclass": "currency",
                "altname": asset_code(code),
                "decimals": asset_decimals(code),
                "display_decimals": min(asset_decimals(code), 5),
                "status": "enabled",
            }
            for code in codes
        }

    def _pairs(self, params: Mapping[str, Any]) -> list[PairInfo]:
        wanted = _split(text(params, "pair"))
        if not wanted:
            return list(self.exchange.pairs)
        return [self.exchange.pair(name) for name in wanted]

    def asset_pairs(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        info = text(params, "info") or "info"
        keys = {
            "leverage": ("leverage_buy", "leverage_sell"),
            "fees": ("fees", "fees_maker", "fee_volume_currency"),
            "margin": ("margin_call", "margin_stop"),
        }.get(info)
        if info != "info" and keys is None:
            raise _invalid("info")
        result = {}
        for pair in self._pairs(params):
            raw = self._asset_pairs[pair.pair_id]
            result[pair.pair_id] = raw if keys is None else {k: raw[k] for k in keys if k in raw}
        return result

    def ticker(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        requested = bool(_split(text(params, "pair")))
        result = {}
        for pair in self._pairs(params):
            stats = self.market.stats(pair.altname)
            if stats is None:
                if requested:
                    raise ExchangeError("EQuery:Unknown asset pair")
                continue
            result[pair.pair_id] = rest_ticker(stats, self.market.seed)
        return result

    def ohlc(self, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        name = text(params, "pair")
        if not name:
            raise _invalid("pair")
        pair = self.exchange.pair(name)
        interval = integer(params, "interval") or 1
        if interval not in INTERVALS:
            raise _invalid("interval")
        since = integer(params, "since")
        rows, last = self.market.ohlc(pair.altname, interval, since)
        return {pair.pair_id: rows, "last": last}

    # ------------------------------------------------------------------ private: reads

    def balance(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, str]:
        return {k: Assets.fmt(k, v) for k, v in sorted(self.exchange.balances(account).items())}

    def balance_ex(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        holds = self.exchange.holds(account)
        return {
            k: {"balance": Assets.fmt(k, v), "hold_trade": Assets.fmt(k, holds.get(k, _ZERO))}
            for k, v in sorted(self.exchange.balances(account).items())
        }

    def trade_balance(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, str]:
        target = self.exchange.assets.get(text(params, "asset") or "ZUSD")
        if target is None:
            raise ExchangeError("EQuery:Unknown asset")
        total = sum((self._convert(a, v, target) for a, v in self.exchange.balances(account).items()), _ZERO)
        value = fmt(total, 4)
        zero = fmt(_ZERO, 4)
        return {"eb": value, "tb": value, "m": zero, "n": zero, "c": zero, "v": zero, "e": value, "mf": value,
                "uv": zero}

    def _convert(self, asset: str, amount: Decimal, target: str) -> Decimal:
        if asset == target or not amount:
            return amount
        for pair in self.exchange.pairs:
            price = self.market.price(pair.altname)
            if not price:
                continue
            if (pair.base, pair.quote) == (asset, target):
                return amount * price
            if (pair.base, pair.quote) == (target, asset):
                return amount / price
        return _ZERO

    def order_json(self, order: Order, trades: bool = False) -> dict[str, Any]:
        pair = self.exchange.pair(order.pair)
        places, lots, costs = pair.pair_decimals, pair.lot_decimals, pair.cost_decimals
        descr_price = order.trail.text(places) if order.trail else fmt(order.price or _ZERO, places)
        descr_price2 = order.trail_limit.text(places) if order.trail_limit else fmt(order.price2 or _ZERO, places)
        data: dict[str, Any] = {
            "refid": None,
            "userref": order.userref if order.userref is not None else 0,
            "status": order.status,
            "opentm": round(order.opentm, 4),
            "starttm": order.starttm or 0,
            "expiretm": order.expiretm or 0,
            "descr": {
                "pair": pair.altname,
                "type": order.side,
                "ordertype": order.ordertype,
                "price": descr_price,
                "price2": descr_price2,
                "leverage": "none",
                "order": describe(order, pair),
                "close": describe_close(order.close, pair),
            },
            "vol": fmt(order.volume, lots),
            "vol_exec": fmt(order.vol_exec, lots),
            "cost": fmt(order.cost, costs),
            "fee": fmt(order.fee, asset_decimals(pair.base) if "fcib" in order.oflags else costs),
            "price": fmt(order.avg_price, places),
            "stopprice": fmt(order.stopprice, costs),
            "limitprice": fmt(order.limitprice, costs),
            "misc": order.misc,
            "oflags": ",".join(order.oflags),
        }
        if order.cl_ord_id is not None:
            data["cl_ord_id"] = order.cl_ord_id
        if trades:
            data["trades"] = list(order.trades)
        if not order.is_open:
            data["closetm"] = round(order.closetm or 0.0, 4)
            data["reason"] = order.reason
        return data

    def _ref_filters(self, params: Mapping[str, Any]) -> Callable[[Order], bool]:
        userref = integer(params, "userref")
        cl_ord_id = text(params, "cl_ord_id")
        return lambda o: (userref is None or o.userref == userref) and (not cl_ord_id or o.cl_ord_id == cl_ord_id)

    def open_orders(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        trades, keep = flag(params, "trades"), self._ref_filters(params)
        orders = [o for o in self.exchange.open_orders(account) if keep(o)]
        return {"open": {o.txid: self.order_json(o, trades) for o in orders}}

    def closed_orders(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        trades, keep = flag(params, "trades"), self._ref_filters(params)
        start, end = number(params, "start"), number(params, "end")
        closetime = text(params, "closetime") or "both"
        if closetime not in ("open", "close", "both"):
            raise _invalid("closetime")

        def in_range(o: Order) -> bool:
            times = {"open": [o.opentm], "close": [o.closetm or 0.0], "both": [o.opentm, o.closetm or 0.0]}[closetime]
            return any((start is None or t > start) and (end is None or t <= end) for t in times)

        orders = [o for o in self.exchange.closed_orders(account) if keep(o) and in_range(o)]
        orders.sort(key=lambda o: o.closetm or 0.0, reverse=True)
        offset = integer(params, "ofs") or 0
        page = orders[offset : offset + PAGE]
        return {"closed": {o.txid: self.order_json(o, trades) for o in page}, "count": len(orders)}

    def query_orders(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        txids = _split(text(params, "txid"))
        if not txids or len(txids) > PAGE:
            raise _invalid("txid")
        trades, keep = flag(params, "trades"), self._ref_filters(params)
        result = {}
        for txid in txids:
            order = self.exchange.orders.get(txid)
            if order is None or order.account != account:
                raise ExchangeError("EOrder:Invalid order")
            if keep(order):
                result[txid] = self.order_json(order, trades)
        return result

    def trade_json(self, fill: Fill) -> dict[str, Any]:
        """A TradesHistory entry: price, cost, fee and margin with the pair's `cost_decimals`
        (Kraken's example: `"price": "72026.50000", "cost": "7.20265"` for XXBTZUSD), volume
        with `lot_decimals`; a fee taken in the base currency (`fcib`) with that asset's decimals."""
        pair = self.exchange.pair(fill.pair)
        costs = pair.cost_decimals
        fee_places = costs if fill.fee_asset == pair.quote else asset_decimals(fill.fee_asset)
        return {
            "ordertxid": fill.txid,
            "postxid": "",
            "pair": pair.pair_id,
            "time": round(fill.time, 4),
            "type": fill.side,
            "ordertype": fill.ordertype,
            "price": fmt(fill.price, max(pair.pair_decimals, costs)),
            "cost": fmt(fill.cost, costs),
            "fee": fmt(fill.fee, fee_places),
            "vol": fmt(fill.volume, pair.lot_decimals),
            "margin": fmt(_ZERO, costs),
            "misc": "",
            "maker": fill.maker,
        }

    def trades_history(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        fills = [f for f in self.exchange.trades.values() if f.account == account]
        fills.sort(key=lambda f: f.time, reverse=True)
        offset = integer(params, "ofs") or 0
        return {"trades": {f.trade_id: self.trade_json(f) for f in fills[offset : offset + PAGE]}, "count": len(fills)}

    # ------------------------------------------------------------------ private: trading

    def _counter(self, account: str, pair: str) -> DecayingCounter:
        key = (account, pair)
        if key not in self._trade_counters:
            tier = self.tier(account)
            self._trade_counters[key] = DecayingCounter(tier.trade_max, tier.trade_decay)
        return self._trade_counters[key]

    def trade_counter(self, account: str, pair: str, now: float) -> float:
        """The trading counter's value for an account and pair (any pair name)."""
        return self._counter(account, self.exchange.pair(pair).altname).value(now)

    def _charge_cancels(self, account: str, orders: list[Order], now: float, strict: bool) -> None:
        by_pair: dict[str, int] = {}
        for order in orders:
            by_pair[order.pair] = by_pair.get(order.pair, 0) + cancel_penalty(now - order.opentm)
        if strict and any(self._counter(account, p).would_exceed(c, now) for p, c in by_pair.items()):
            raise ExchangeError("EOrder:Rate limit exceeded")
        for pair, cost in by_pair.items():
            self._counter(account, pair).force_add(cost, now)

    def add_order(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        if self.status == "cancel_only":
            raise ExchangeError("EService:Market in cancel_only mode")
        check_deadline(params, now)
        name = text(params, "pair")
        if not name:
            raise _invalid("pair")
        pair = self.exchange.pair(name)
        # Kraken charges the trading counter on receipt, even if validation then fails.
        if not self._counter(account, pair.altname).add(1, now):
            raise ExchangeError("EOrder:Rate limit exceeded")
        request = parse_add_order(params, self.exchange, now)
        if self.status == "post_only" and "post" not in request.oflags:
            raise ExchangeError("EService:Market in post_only mode")
        descr = {"order": describe(request, pair)}
        if request.close is not None:
            descr["close"] = describe_close(request.close, pair)
        if flag(params, "validate"):
            self.exchange.validate(account, request, now)
            return {"descr": descr}
        open_here = sum(1 for o in self.exchange.open_orders(account) if o.pair == pair.altname)
        if open_here >= self.tier(account).max_open_orders:
            raise ExchangeError("EOrder:Orders limit exceeded")
        order, _ = self.exchange.place(account, request, now)
        return {"descr": descr, "txid": [order.txid]}

    def cancel_order(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        txid, cl_ord_id = text(params, "txid"), text(params, "cl_ord_id")
        if bool(txid) == bool(cl_ord_id):
            raise _invalid("txid")
        chosen = self.exchange.select(account, txid=txid or None, cl_ord_id=cl_ord_id or None)
        if not chosen:
            raise ExchangeError("EOrder:Unknown order")
        self._charge_cancels(account, chosen, now, strict=True)
        self.exchange.cancel(account, now, txid=txid or None, cl_ord_id=cl_ord_id or None)
        return {"count": len(chosen)}

    def cancel_all(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        chosen = self.exchange.open_orders(account)
        self._charge_cancels(account, chosen, now, strict=False)
        return {"count": len(self.exchange.cancel_all(account, now))}

    def cancel_all_orders_after(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        timeout = integer(params, "timeout")
        if timeout is None or not 0 <= timeout < 86400:
            raise _invalid("timeout")
        trigger = self.exchange.cancel_all_after(account, timeout, now)
        return {"currentTime": iso_seconds(now), "triggerTime": "0" if trigger is None else iso_seconds(trigger)}

    def websockets_token(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        token = self._ids.token()
        self.ws_tokens[token] = (account, now + WS_TOKEN_SECONDS)
        return {"token": token, "expires": WS_TOKEN_SECONDS}

    def token_account(self, token: Any, now: float) -> str | None:
        """The account of a WebSocket token not yet used and not expired, or of one in use
        (Kraken: "it does not expire once a successful Websockets connection and private
        subscription has been made and is maintained")."""
        found = self.ws_tokens.get(token) if isinstance(token, str) else None
        if found is None or (found[1] and now > found[1]):
            return None
        return found[0]

    def keep_token(self, token: str) -> None:
        """A private subscription was made with `token`: it no longer expires."""
        if token in self.ws_tokens:
            self.ws_tokens[token] = (self.ws_tokens[token][0], 0.0)


def _minimal_pair(pair: PairInfo) -> dict[str, Any]:
    """An AssetPairs entry for a pair the snapshot does not carry."""
    return {
        "altname": pair.altname,
        "wsname": pair.wsname,
        "aclass_base": "currency",
        "base": pair.base,
        "aclass_quote": "currency",
        "quote": pair.quote,
        "lot": "unit",
        "pair_decimals": pair.pair_decimals,
        "lot_decimals": pair.lot_decimals,
        "lot_multiplier": 1,
        "ordermin": str(pair.ordermin),
        "costmin": str(pair.costmin),
        "tick_size": str(pair.tick_size),
        "status": pair.status,
    }
