"""The private Spot WebSocket v2 (Kraken's `wss://ws-auth.kraken.com/v2`, here `/auth/v2`).

Every request carries `params.token`, a token from REST `GetWebSocketsToken` (valid 15
minutes until a private subscription uses it; then it stays valid); a missing, unknown or
expired one is answered `EAPI:Invalid token` and the socket stays open.

- `subscribe` / `unsubscribe` to `executions` (`snap_orders`, default true: the open orders;
  `snap_trades`, default false: the last 50 fills) and `balances` (a snapshot of every asset,
  with its `spot`/`main` wallet). Then updates as they happen, with a `sequence` per channel:
  executions `pending_new` and `new` for a new order, `trade` (with `last_qty`, `last_price`,
  `cost`, `fees`, `liquidity_ind`) then `filled` for a fill, `canceled` (with `reason`),
  `expired`, and `amended`; balances one ledger-like entry per changed asset (`amount`,
  `balance`, `type: trade` when a fill caused it, else `adjustment`).
- Methods `add_order`, `cancel_order` (`order_id`, `cl_ord_id` or `order_userref` lists,
  one answer per cancelled order, with its `order_id` and its `cl_ord_id` if it has one),
  `cancel_all`, `cancel_all_orders_after` and `ping`. They run the same code as REST
  AddOrder/CancelOrder/CancelAll/CancelAllOrdersAfter (checks, trading counter, errors) and
  answer `{"method", "result", "success", "time_in", "time_out", "req_id"}`; `add_order`
  answers `order_id` (and `cl_ord_id` / `order_userref` when given).
- `{"channel": "heartbeat"}` every heartbeat interval once subscribed.

What changed is found by comparing the paper exchange with what was last sent, right after
every REST call, price move and timer run, so a client sees its order's `new` and `trade`
events within the call that caused them. Unconfirmed against Kraken (its docs do not show
them): the snapshot entries carry no `exec_type`, and a batch, amend or edit made over REST
shows up here as `new`/`canceled`/`amended` events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rules_engine.pairs import asset_code, modern_asset
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.orders import Order
from rules_engine.sim.market import rfc3339
from rules_engine.sim.ws_connections import accept, drop, gone, serve

if TYPE_CHECKING:
    from rules_engine.sim.server import Simulator

PRIVATE_CHANNELS = ("executions", "balances")
TRADES_SNAPSHOT = 50
_STATUS = {"open": "new", "pending": "pending_new", "closed": "filled", "canceled": "canceled",
           "expired": "expired"}
_REST_FIELDS = {"order_type": "ordertype", "side": "type", "order_qty": "volume", "order_userref": "userref",
                "cl_ord_id": "cl_ord_id", "validate": "validate", "deadline": "deadline",
                "display_qty": "displayvol", "reduce_only": "reduce_only", "stp_type": "stptype"}
_UNSUPPORTED = ("conditional", "margin", "leverage", "cash_order_qty")


def _number(value: Decimal) -> float | int:
    return float(value)


def asset_name(kraken_id: str) -> str:
    """`XXBT` -> `BTC`, `ZUSD` -> `USD` (the v2 API's asset names)."""
    return modern_asset(asset_code(kraken_id))


@dataclass(eq=False)
class PrivateConnection:
    ws: web.WebSocketResponse
    request: web.Request  # its transport is aborted to drop it (faults)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    account: str | None = None
    channels: set[str] = field(default_factory=set)
    sequence: dict[str, int] = field(default_factory=dict)

    def send(self, frame: Any) -> None:
        self.queue.put_nowait(json.dumps(frame))

    def next_sequence(self, channel: str) -> int:
        self.sequence[channel] = self.sequence.get(channel, 0) + 1
        return self.sequence[channel]


@dataclass
class _Seen:
    """What the subscribers were last told about one order."""

    status: str
    vol_exec: Decimal
    terms: tuple[Any, ...]


class PrivateFeed:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.connections: set[PrivateConnection] = set()
        self._orders: dict[str, _Seen] = {}
        self._balances: dict[str, dict[str, Decimal]] = {}
        self._exec_ids = 0
        self._ledger_ids = 0
        self._baseline_stale = True

    @property
    def active(self) -> bool:
        return any(c.channels for c in self.connections)

    # ------------------------------------------------------------------ connections

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = await accept(request)
        if ws is None:
            return gone()
        conn = PrivateConnection(ws, request)
        self.connections.add(conn)
        conn.send({"channel": "status", "type": "update", "data": [{
            "version": "2.0.10", "system": self.sim.spot_api.status, "api_version": "v2",
            "connection_id": id(conn)}]})

        def on_text(data: str) -> None:
            with self.sim.lock:
                self._on_message(conn, data)
                self.flush()

        return await serve(conn, self.connections, on_text, (self._sender(conn), self._heartbeats(conn)))

    async def _sender(self, conn: PrivateConnection) -> None:
        try:
            while True:
                await conn.ws.send_str(await conn.queue.get())
        except (ConnectionError, RuntimeError):
            pass

    async def _heartbeats(self, conn: PrivateConnection) -> None:
        while True:
            await asyncio.sleep(self.sim.config.heartbeat_interval)
            if conn.channels and not self.sim.faults.heartbeats_stopped and not self.sim.faults.feeds_paused:
                conn.send({"channel": "heartbeat"})

    def drop_all(self, code: int | None) -> int:
        """Abort every private connection (or close it with `code`): `faults.drop_ws_connections`."""
        return drop(self.connections, code)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.ws.close(code=1001) for c in list(self.connections)), return_exceptions=True)

    # ------------------------------------------------------------------ requests

    def _on_message(self, conn: PrivateConnection, data: str) -> None:
        now = self.sim.clock()
        time_in = rfc3339(now)
        try:
            message = json.loads(data, parse_float=Decimal)
            method = message["method"]
            params = message.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            conn.send({"error": "Malformed request", "success": False, "time_in": time_in, "time_out": time_in})
            return
        req_id = message.get("req_id")

        def reply(body: dict[str, Any]) -> None:
            body = {"method": method, **body, "time_in": time_in, "time_out": rfc3339(self.sim.clock())}
            if req_id is not None:
                body["req_id"] = req_id
            conn.send(body)

        if method == "ping":
            reply({"method": "pong"})
            return
        handlers: dict[str, Callable[[PrivateConnection, str, dict[str, Any], float, Callable], None]] = {
            "subscribe": self._subscribe, "unsubscribe": self._unsubscribe, "add_order": self._add_order,
            "cancel_order": self._cancel_order, "cancel_all": self._cancel_all,
            "cancel_all_orders_after": self._cancel_after,
        }
        handler = handlers.get(method)
        if handler is None:
            reply({"error": f"Method not found: {method}", "success": False})
            return
        account = self.sim.spot_api.token_account(params.get("token"), now)
        if account is None:
            reply({"error": "EAPI:Invalid token", "success": False})
            return
        conn.account = account
        handler(conn, account, params, now, reply)

    def _subscribe(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                   reply: Callable) -> None:
        channel = params.get("channel")
        if channel not in PRIVATE_CHANNELS:
            reply({"error": "Subscription name invalid", "success": False})
            return
        if channel in conn.channels:
            reply({"error": "Already subscribed", "success": False})
            return
        self.flush()  # tell the other subscribers what happened before this snapshot
        if self._baseline_stale:
            self._rebaseline()
        self.sim.spot_api.keep_token(params["token"])
        snapshot = params.get("snapshot", True) is not False
        reply({"result": {"channel": channel, "snapshot": snapshot}, "success": True})
        conn.channels.add(channel)
        if channel == "balances":
            if snapshot:
                conn.send({"channel": "balances", "type": "snapshot", "data": self._balance_snapshot(account),
                           "sequence": conn.next_sequence("balances")})
            return
        data: list[dict[str, Any]] = []
        if params.get("snap_trades", False) is True:
            fills = [f for f in self.sim.exchange.trades.values() if f.account == account][-TRADES_SNAPSHOT:]
            data += [self._entry(self.sim.exchange.orders[f.txid], "trade", f.time, f.trade_id, snapshot=True)
                     for f in fills if f.txid in self.sim.exchange.orders]
        if params.get("snap_orders", True) is not False:
            data += [self._entry(o, None, o.opentm, snapshot=True) for o in self.sim.exchange.open_orders(account)]
        conn.send({"channel": "executions", "type": "snapshot", "data": data,
                   "sequence": conn.next_sequence("executions")})

    def _unsubscribe(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                     reply: Callable) -> None:
        channel = params.get("channel")
        if channel not in conn.channels:
            reply({"error": "Subscription Not Found", "success": False})
            return
        conn.channels.discard(channel)
        reply({"result": {"channel": channel}, "success": True})

    def _rest(self, method: str, account: str, params: Mapping[str, Any], now: float) -> Any:
        return self.sim.spot_api.private(method, account, params, now)

    def _add_order(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                   reply: Callable) -> None:
        try:
            rest = rest_add_order(params, self.sim)
            result = self._rest("AddOrder", account, rest, now)
        except ExchangeError as exc:
            reply({"error": exc.error, "success": False})
            return
        answer: dict[str, Any] = {"order_id": (result.get("txid") or [""])[0]}
        for name in ("cl_ord_id", "order_userref"):
            if params.get(name) is not None:
                answer[name] = params[name]
        reply({"result": answer, "success": True})

    def _cancel_order(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                      reply: Callable) -> None:
        given = [(key, params.get(key)) for key in ("order_id", "cl_ord_id", "order_userref") if params.get(key)]
        if len(given) != 1 or not isinstance(given[0][1], list):
            reply({"error": "EGeneral:Invalid arguments:order_id", "success": False})
            return
        key, values = given[0][0], list(given[0][1] or ())
        for value in values:
            rest = {"cl_ord_id": str(value)} if key == "cl_ord_id" else {"txid": str(value)}
            chosen = self.sim.exchange.select(account, txid=rest.get("txid"), cl_ord_id=rest.get("cl_ord_id"))
            try:
                self._rest("CancelOrder", account, rest, now)
            except ExchangeError as exc:
                reply({"error": exc.error, "success": False, "result": {key: value}})
                continue
            for order in chosen:
                answer = {"order_id": order.txid}
                if order.cl_ord_id is not None:
                    answer["cl_ord_id"] = order.cl_ord_id
                reply({"result": answer, "success": True})

    def _cancel_all(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                    reply: Callable) -> None:
        reply({"result": self._rest("CancelAll", account, {}, now), "success": True})

    def _cancel_after(self, conn: PrivateConnection, account: str, params: dict[str, Any], now: float,
                      reply: Callable) -> None:
        try:
            result = self._rest("CancelAllOrdersAfter", account, {"timeout": params.get("timeout")}, now)
        except ExchangeError as exc:
            reply({"error": exc.error, "success": False})
            return
        reply({"result": result, "success": True})

    # ------------------------------------------------------------------ updates

    def _terms(self, order: Order) -> tuple[Any, ...]:
        return (order.volume, order.price, order.price2, order.displayvol)

    def _rebaseline(self) -> None:
        exchange = self.sim.exchange
        self._orders = {t: _Seen(o.status, o.vol_exec, self._terms(o)) for t, o in exchange.orders.items()}
        accounts = {o.account for o in exchange.orders.values()} | set(exchange.accounts())
        self._balances = {a: exchange.balances(a) for a in accounts}
        self._baseline_stale = False

    def flush(self) -> None:
        """Send what changed since the last flush to the subscribers (call under the lock,
        on the server's loop)."""
        if not self.active:
            self._baseline_stale = True
            return
        if self._baseline_stale:
            self._rebaseline()
            return
        now = self.sim.clock()
        per_account: dict[str, list[dict[str, Any]]] = {}
        for txid, order in self.sim.exchange.orders.items():
            seen = self._orders.get(txid)
            if seen is not None and seen.status == order.status and seen.vol_exec == order.vol_exec \
                    and seen.terms == self._terms(order):
                continue
            per_account.setdefault(order.account, []).extend(self._order_events(order, seen, now))
            self._orders[txid] = _Seen(order.status, order.vol_exec, self._terms(order))
        balance_updates = self._balance_updates(now)
        for conn in list(self.connections):
            if conn.account is None:
                continue
            events = per_account.get(conn.account)
            if events and "executions" in conn.channels:
                conn.send({"channel": "executions", "type": "update", "data": events,
                           "sequence": conn.next_sequence("executions")})
            updates = balance_updates.get(conn.account)
            if updates and "balances" in conn.channels:
                conn.send({"channel": "balances", "type": "update", "data": updates,
                           "sequence": conn.next_sequence("balances")})

    def _order_events(self, order: Order, seen: _Seen | None, now: float) -> list[dict[str, Any]]:
        events = []
        if seen is None:
            events.append(self._entry(order, "pending_new", order.opentm, status="pending_new"))
            events.append(self._entry(order, "new", order.opentm, status="new"))
        elif seen.terms != self._terms(order) and order.is_open:
            events.append(self._entry(order, "amended", now))
        if order.vol_exec and (seen is None or seen.vol_exec != order.vol_exec):
            for trade_id in order.trades:
                fill = self.sim.exchange.trades.get(trade_id)
                if fill is not None:
                    events.append(self._entry(order, "trade", fill.time, trade_id))
        if not order.is_open and (seen is None or seen.status != order.status):
            kind = {"closed": "filled", "canceled": "canceled", "expired": "expired"}.get(order.status)
            if kind is not None:
                events.append(self._entry(order, kind, order.closetm or now))
        return events

    def _entry(self, order: Order, exec_type: str | None, time: float, trade_id: str | None = None,
               status: str | None = None, snapshot: bool = False) -> dict[str, Any]:
        pair = self.sim.exchange.pair(order.pair)
        self._exec_ids += 1
        entry: dict[str, Any] = {
            "order_id": order.txid,
            "symbol": pair.v2_symbol,
            "side": order.side,
            "order_type": order.ordertype,
            "order_qty": _number(order.volume),
            "order_status": status or _STATUS.get(order.status, order.status),
            "time_in_force": order.timeinforce,
            "order_userref": order.userref or 0,
            "timestamp": rfc3339(time),
            "cum_qty": _number(order.vol_exec),
            "cum_cost": _number(order.cost),
            "avg_price": _number(order.avg_price),
            "exec_id": f"E{self._exec_ids:017d}",
        }
        if exec_type is not None and not (snapshot and exec_type != "trade"):
            entry["exec_type"] = exec_type
        if order.cl_ord_id is not None:
            entry["cl_ord_id"] = order.cl_ord_id
        limit = order.price2 if order.ordertype.endswith("-limit") else order.price
        if order.ordertype in ("limit", "iceberg", "stop-loss-limit", "take-profit-limit") and limit is not None:
            entry["limit_price"] = _number(limit)
        if order.ordertype in ("stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit") and order.price:
            entry["triggers"] = {"reference": "last", "price": _number(order.price), "price_type": "static"}
        if order.status == "canceled" and exec_type == "canceled":
            entry["reason"] = order.reason
        if exec_type == "trade" and trade_id is not None:
            fill = self.sim.exchange.trades[trade_id]
            entry.update({
                "trade_id": trade_id,
                "last_qty": _number(fill.volume),
                "last_price": _number(fill.price),
                "cost": _number(fill.cost),
                "liquidity_ind": "m" if fill.maker else "t",
                "fees": [{"asset": asset_name(fill.fee_asset), "qty": _number(fill.fee)}],
                "fee_ccy_pref": "fees_base_currency" if "fcib" in order.oflags else "fees_quote_currency",
                "timestamp": rfc3339(fill.time),
            })
        return entry

    def _balance_snapshot(self, account: str) -> list[dict[str, Any]]:
        return [{"asset": asset_name(code), "asset_class": "currency", "balance": _number(amount),
                 "wallets": [{"type": "spot", "id": "main", "balance": _number(amount)}]}
                for code, amount in sorted(self.sim.exchange.balances(account).items())]

    def _balance_updates(self, now: float) -> dict[str, list[dict[str, Any]]]:
        exchange = self.sim.exchange
        updates: dict[str, list[dict[str, Any]]] = {}
        accounts = set(self._balances) | {c.account for c in self.connections if c.account}
        for account in accounts:
            current = exchange.balances(account)
            before = self._balances.get(account, {})
            last_fill = next((f for f in reversed(list(exchange.trades.values())) if f.account == account), None)
            for code in sorted(current.keys() | before.keys()):
                amount = current.get(code, Decimal(0)) - before.get(code, Decimal(0))
                if not amount:
                    continue
                self._ledger_ids += 1
                traded = last_fill is not None and code in (exchange.pair(last_fill.pair).base,
                                                            exchange.pair(last_fill.pair).quote)
                fee = last_fill.fee if traded and last_fill is not None and last_fill.fee_asset == code else 0
                updates.setdefault(account, []).append({
                    "asset": asset_name(code), "asset_class": "currency", "amount": _number(amount),
                    "balance": _number(current.get(code, Decimal(0))), "fee": _number(Decimal(fee)),
                    "ledger_id": f"L{self._ledger_ids:05d}-SIMUL-ATED00",
                    "ref_id": last_fill.trade_id if traded and last_fill is not None else "",
                    "timestamp": rfc3339(now), "type": "trade" if traded else "adjustment",
                    "subtype": "tradespot" if traded else "", "category": "trade" if traded else "adjustment",
                    "wallet_type": "spot", "wallet_id": "main",
                })
            self._balances[account] = current
        return updates


def rest_add_order(params: Mapping[str, Any], sim: Simulator) -> dict[str, Any]:
    """WebSocket v2 `add_order` parameters as REST AddOrder's (the v2 symbol as the pair id,
    `limit_price` and `triggers` as `price`/`price2`, `time_in_force`, `post_only`, ...)."""
    for name in _UNSUPPORTED:
        if name in params:
            raise ExchangeError(f"EGeneral:Invalid arguments:Unsupported field: '{name}'")
    symbol = params.get("symbol")
    pair = sim.pairs.get(symbol) if isinstance(symbol, str) else None
    if pair is None:
        raise ExchangeError("EQuery:Unknown asset pair")
    rest: dict[str, Any] = {"pair": pair.altname}
    for v2_name, rest_name in _REST_FIELDS.items():
        if params.get(v2_name) is not None:
            rest[rest_name] = params[v2_name]
    kind = str(params.get("order_type", ""))
    limit, triggers = params.get("limit_price"), params.get("triggers")
    if isinstance(triggers, Mapping) and triggers.get("price") is not None:
        rest["price"] = triggers["price"]
        if limit is not None:
            rest["price2"] = limit
    elif limit is not None:
        rest["price"] = limit
    if kind.startswith("trailing"):
        raise ExchangeError("EGeneral:Invalid arguments:Unsupported field: 'triggers'")
    flags = []
    if params.get("post_only") is True:
        flags.append("post")
    preference = params.get("fee_preference")
    if preference in ("base", "quote"):
        flags.append("fcib" if preference == "base" else "fciq")
    if params.get("no_mpp") is True:
        flags.append("nompp")
    if flags:
        rest["oflags"] = ",".join(flags)
    if params.get("time_in_force") is not None:
        rest["timeinforce"] = str(params["time_in_force"]).upper()
    for v2_name, rest_name in (("expire_time", "expiretm"), ("effective_time", "starttm")):
        if params.get(v2_name):
            try:
                moment = datetime.fromisoformat(str(params[v2_name]).replace("Z", "+00:00"))
            except ValueError:
                raise ExchangeError(f"EGeneral:Invalid arguments:{v2_name}") from None
            rest[rest_name] = str(int(moment.timestamp()))
    return rest
