"""Spot trading calls beyond AddOrder/CancelOrder: `AmendOrder`, `EditOrder`, `AddOrderBatch`
and `CancelOrderBatch`, and the public `Depth` and `Trades` (`rules_engine.sim.book`).

`install(api)` adds them to a `SpotApi`'s method tables. Each charges the pair's trading
counter as Kraken documents (../shared/reference/kraken-api.md section 5): a fixed count on
receipt, even when the call then fails, plus a count that decays with the order's age (since
it was placed or last amended):

| call | fixed | <5 s | <10 s | <15 s | <45 s | <90 s | <300 s |
|---|---|---|---|---|---|---|---|
| AmendOrder | +1 | +3 | +2 | +1 | | | |
| EditOrder | +1 | +6 | +5 | +4 | +2 | +1 | |
| AddOrderBatch | +n/2 | | | | | | |
| CancelOrderBatch | | the sum of each order's cancel penalty (+8 ... +1) |

- AmendOrder changes an open order in place (same txid and cl_ord_id): `order_qty`,
  `display_qty` (iceberg), `limit_price` (limit types; the limit of a *-limit stop),
  `trigger_price` (stop and take-profit types), `post_only` (refuse a limit that would
  take liquidity), `deadline`. Answers `{"amend_id": "T..."}`. A new price that crosses the
  market fills at once, as a new order would.
- EditOrder (Kraken's older call) cancels the order and places a new one with a new txid:
  `txid`, `pair`, `volume`, `displayvol`, `price`, `price2`, `oflags`, `userref`, `deadline`,
  `validate`. Answers `status`, `txid`, `originaltxid`, `volume`, `price`, `price2`,
  `orders_cancelled`, `descr`. If the new order is refused the old one stays open.
- AddOrderBatch: 2 to 15 orders in one pair (`orders`, `pair`, `deadline`, `validate`). The
  whole batch is validated first (one invalid order refuses the batch); then each is placed,
  and one that fails its funding check gets `{"error": "EOrder:Insufficient funds"}` while the
  rest go on. Each placed entry carries `descr` and a scalar `txid`.
- CancelOrderBatch: up to 50 ids in `orders` (txids or userrefs) and `cl_ord_ids`; answers
  `{"count": n}`; `EOrder:Unknown order` when none of them is an open order.

Kraken's docs do not give the error strings for a batch of the wrong size, an amend of a
parameter the order type does not have, or a `post_only` amend that would take liquidity;
the simulator answers `EGeneral:Invalid arguments:<field>` for the first two and
`EOrder:Post only order` for the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rules_engine.paper.add_order import _invalid, check_deadline, flag, integer, number, parse_add_order, text
from rules_engine.paper.assets import fmt
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.orders import Order, OrderRequest, describe
from rules_engine.sim.book import MarketBook

if TYPE_CHECKING:
    from rules_engine.sim.spot_api import SpotApi

_AMEND_PENALTY = ((5, 3), (10, 2), (15, 1))
_EDIT_PENALTY = ((5, 6), (10, 5), (15, 4), (45, 2), (90, 1))
BATCH_MIN, BATCH_MAX, CANCEL_BATCH_MAX = 2, 15, 50
_LIMIT_TYPES = frozenset({"limit", "iceberg"})
_STOP_LIMIT_TYPES = frozenset({"stop-loss-limit", "take-profit-limit"})
_TRIGGER_TYPES = frozenset({"stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit"})


def _age_penalty(table: tuple[tuple[int, int], ...], age: float) -> int:
    return next((cost for limit, cost in table if age < limit), 0)


class SpotTrading:
    """The calls above, over a `SpotApi` (its exchange, market and trading counters)."""

    def __init__(self, api: SpotApi):
        self.api = api
        self.exchange = api.exchange
        self.book = MarketBook(api.market, api.exchange)
        self._amended: dict[str, float] = {}  # txid -> last amend time

    def install(self) -> None:
        self.api.public_methods.update({"Depth": self.book.depth, "Trades": self.book.trades})
        self.api.private_methods.update({
            "AmendOrder": self.amend_order,
            "EditOrder": self.edit_order,
            "AddOrderBatch": self.add_order_batch,
            "CancelOrderBatch": self.cancel_order_batch,
        })

    # ------------------------------------------------------------------ helpers

    def _charge(self, account: str, pair: str, fixed: float, decaying: float, now: float) -> None:
        """Fixed count on receipt (refused if over), then the decaying count (refused if over)."""
        counter = self.api._counter(account, pair)
        if fixed and not counter.add(fixed, now):
            raise ExchangeError("EOrder:Rate limit exceeded")
        if decaying:
            if counter.would_exceed(decaying, now):
                raise ExchangeError("EOrder:Rate limit exceeded")
            counter.force_add(decaying, now)

    def _age(self, order: Order, now: float) -> float:
        return now - max(order.opentm, self._amended.get(order.txid, order.opentm))

    def _one_open_order(self, account: str, params: Mapping[str, Any], by_userref: bool = False) -> Order:
        txid, cl_ord_id = text(params, "txid"), text(params, "cl_ord_id")
        if bool(txid) == bool(cl_ord_id):
            raise _invalid("txid")
        if txid and not by_userref and txid.lstrip("-").isdigit():
            raise _invalid("txid")
        chosen = self.exchange.select(account, txid=txid or None, cl_ord_id=cl_ord_id or None)
        if not chosen:
            raise ExchangeError("EOrder:Unknown order")
        if len(chosen) > 1:
            raise _invalid("txid")
        return chosen[0]

    def _check_market(self, post_only: bool = False) -> None:
        status = self.api.status
        if status == "cancel_only":
            raise ExchangeError("EService:Market in cancel_only mode")
        if status == "post_only" and not post_only:
            raise ExchangeError("EService:Market in post_only mode")

    # ------------------------------------------------------------------ AmendOrder

    def amend_order(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        post_only = flag(params, "post_only")
        self._check_market(post_only)
        check_deadline(params, now)
        order = self._one_open_order(account, params)
        self._charge(account, order.pair, 1, _age_penalty(_AMEND_PENALTY, self._age(order, now)), now)
        volume, display = number(params, "order_qty"), number(params, "display_qty")
        limit, trigger = number(params, "limit_price"), number(params, "trigger_price")
        if volume is None and display is None and limit is None and trigger is None:
            raise _invalid("order_qty")
        request = _as_request(order)
        if volume is not None:
            request = replace(request, volume=volume)
        if display is not None:
            if order.ordertype != "iceberg":
                raise _invalid("display_qty")
            request = replace(request, displayvol=display)
        if limit is not None:
            if order.ordertype in _LIMIT_TYPES:
                request = replace(request, price=limit)
            elif order.ordertype in _STOP_LIMIT_TYPES:
                request = replace(request, price2=limit)
            else:
                raise _invalid("limit_price")
        if trigger is not None:
            if order.ordertype not in _TRIGGER_TYPES or order.triggered:
                raise _invalid("trigger_price")
            request = replace(request, price=trigger)
        self.exchange.validate(account, request, now)  # arguments, minimums, tick size
        last = self.exchange.last_price(order.pair)
        new_limit = request.price if order.ordertype in _LIMIT_TYPES else None
        if post_only and new_limit is not None and last is not None and (
                new_limit >= last if order.side == "buy" else new_limit <= last):
            raise ExchangeError("EOrder:Post only order")
        self.exchange.amend(order, request, now)
        self._amended[order.txid] = now
        return {"amend_id": self.exchange.new_trade_id()}

    # ------------------------------------------------------------------ EditOrder

    def edit_order(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        self._check_market()
        check_deadline(params, now)
        name = text(params, "pair")
        if not name:
            raise _invalid("pair")
        pair = self.exchange.pair(name)
        txid = text(params, "txid")
        if not txid:
            raise _invalid("txid")
        chosen = self.exchange.select(account, txid=txid)
        if not chosen or chosen[0].pair != pair.altname:
            raise ExchangeError("EOrder:Unknown order")
        if len(chosen) > 1:
            raise _invalid("txid")
        old = chosen[0]
        self._charge(account, pair.altname, 1, _age_penalty(_EDIT_PENALTY, self._age(old, now)), now)
        fields: dict[str, Any] = {"pair": pair.altname, "type": old.side, "ordertype": old.ordertype,
                                  "volume": text(params, "volume") or fmt(old.volume, pair.lot_decimals)}
        for key, current in (("price", old.price), ("price2", old.price2), ("displayvol", old.displayvol)):
            given = text(params, key)
            if given:
                fields[key] = given
            elif current is not None:
                fields[key] = str(current)
        oflags = text(params, "oflags")
        fields["oflags"] = oflags if oflags is not None else ",".join(old.oflags)
        userref = integer(params, "userref")
        if userref is not None or old.userref is not None:
            fields["userref"] = str(userref if userref is not None else old.userref)
        if old.expiretm:
            fields["expiretm"] = str(old.expiretm)
            fields["timeinforce"] = old.timeinforce
        request = parse_add_order(fields, self.exchange, now)
        if flag(params, "validate"):
            self.exchange.validate(account, request, now)
            return {"descr": {"order": describe(request, pair)}, "status": "ok"}
        new = self.exchange.replace(old, request, now)
        return {
            "status": "ok",
            "txid": new.txid,
            "originaltxid": old.txid,
            "volume": fmt(new.volume, pair.lot_decimals),
            "price": fmt(new.price or Decimal(0), pair.pair_decimals),
            "price2": fmt(new.price2 or Decimal(0), pair.pair_decimals),
            "orders_cancelled": 1,
            "descr": {"order": describe(request, pair)},
        }

    # ------------------------------------------------------------------ batches

    def add_order_batch(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        orders = params.get("orders")
        if not isinstance(orders, list) or not all(isinstance(o, Mapping) for o in orders):
            raise _invalid("orders")
        name = text(params, "pair")
        if not name:
            raise _invalid("pair")
        pair = self.exchange.pair(name)
        self._charge(account, pair.altname, len(orders) / 2, 0, now)  # on receipt, even if refused
        if not BATCH_MIN <= len(orders) <= BATCH_MAX:
            raise _invalid("orders")
        check_deadline(params, now)
        requests = [parse_add_order({**entry, "pair": pair.altname}, self.exchange, now) for entry in orders]
        if any("post" not in r.oflags for r in requests):
            self._check_market()
        else:
            self._check_market(post_only=True)
        ids = [r.cl_ord_id for r in requests if r.cl_ord_id is not None]
        if len(ids) != len(set(ids)):
            raise ExchangeError("EOrder:Duplicate order")
        for request in requests:  # the whole batch is validated before anything is placed
            self.exchange.validate(account, request, now)
        describe_all = [{"order": describe(r, pair)} for r in requests]
        if flag(params, "validate"):
            return {"orders": [{"descr": d} for d in describe_all]}
        open_here = sum(1 for o in self.exchange.open_orders(account) if o.pair == pair.altname)
        if open_here + len(requests) > self.api.tier(account).max_open_orders:
            raise ExchangeError("EOrder:Orders limit exceeded")
        results: list[dict[str, Any]] = []
        for request, descr in zip(requests, describe_all, strict=True):
            try:
                order, _ = self.exchange.place(account, request, now)
            except ExchangeError as exc:
                results.append({"error": exc.error})
            else:
                results.append({"descr": descr, "txid": order.txid})
        return {"orders": results}

    def cancel_order_batch(self, account: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        refs, cl_ord_ids = params.get("orders") or [], params.get("cl_ord_ids") or []
        if not isinstance(refs, list) or not isinstance(cl_ord_ids, list):
            raise _invalid("orders")
        if not refs and not cl_ord_ids:
            raise _invalid("orders")
        if len(refs) + len(cl_ord_ids) > CANCEL_BATCH_MAX:
            raise _invalid("orders")
        chosen: dict[str, Order] = {}
        for ref in refs:
            ref = ref.get("txid") if isinstance(ref, Mapping) else ref  # older docs: [{"txid": ...}]
            if isinstance(ref, bool) or not isinstance(ref, (str, int)):
                raise _invalid("orders")
            for order in self.exchange.select(account, txid=str(ref)):
                chosen[order.txid] = order
        for cl_ord_id in cl_ord_ids:
            if not isinstance(cl_ord_id, str):
                raise _invalid("cl_ord_ids")
            for order in self.exchange.select(account, cl_ord_id=cl_ord_id):
                chosen[order.txid] = order
        if not chosen:
            raise ExchangeError("EOrder:Unknown order")
        self.api._charge_cancels(account, list(chosen.values()), now, strict=True)
        for order in chosen.values():
            self.exchange.cancel(account, now, txid=order.txid)
        return {"count": len(chosen)}


def _as_request(order: Order) -> OrderRequest:
    """The order's current terms as a request (no cl_ord_id: amending keeps its own)."""
    return OrderRequest(
        pair=order.pair, side=order.side, ordertype=order.ordertype, volume=order.volume, price=order.price,
        price2=order.price2, trail=order.trail, trail_limit=order.trail_limit, oflags=frozenset(order.oflags),
        timeinforce=order.timeinforce, starttm=0.0, expiretm=0.0, userref=order.userref,
        displayvol=order.displayvol,
    )


def install(api: SpotApi) -> SpotTrading:
    """Add Depth, Trades, AmendOrder, EditOrder, AddOrderBatch and CancelOrderBatch to `api`."""
    trading = SpotTrading(api)
    trading.install()
    return trading

